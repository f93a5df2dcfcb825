"""The official clients over a test module's own `server` fixture (a serve_util.Server it starts
with the options it needs)."""

import pytest


@pytest.fixture(scope="module")
def oc(server):
    import ollama

    return ollama.Client(host=server.url)


@pytest.fixture(scope="module")
def ai(server):
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
