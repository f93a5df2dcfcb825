"""The official clients over a test module's own `server` fixture (a serve_util.Server it starts
with the options it needs)."""

import pytest


# Each client is closed before its server stops: an idle keep-alive connection left open holds
# one of the server's worker threads until its keep-alive timeout, and so the server's exit.
@pytest.fixture(scope="module")
def oc(server):
    import ollama

    with ollama.Client(host=server.url) as c:
        yield c


@pytest.fixture(scope="module")
def ai(server):
    import openai

    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused") as c:
        yield c
