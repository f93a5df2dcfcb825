"""`lowbit pull` and POST /api/pull: models from a Hugging Face Hub, here one on loopback
(hub_util.Hub) that the official `huggingface_hub` client is first shown to list and download
through, as it would the real Hub; and from an Ollama registry on loopback (hub_util.Registry). A pulled GGUF must be the model that file makes by path (the
same greedy tokens), a pulled safetensors repository the model its HF directory makes by path at
the same quantization; every file is checked against the SHA-256 the listing gives, so a corrupt
download leaves nothing behind."""

import hashlib
import json
import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cli_helpers import BIN, SHARED, lowbit, needs_bin  # noqa: E402
from hub_util import Hub, Registry  # noqa: E402

SMOL = SHARED / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
STORIES = SHARED / "models" / "stories260K"
pytestmark = [needs_bin, pytest.mark.skipif(not SMOL.exists() or not STORIES.exists(), reason="../shared/models not present")]

HF_FILES = ("config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json")


@pytest.fixture(scope="module")
def stories_gguf(tmp_path_factory):
    """stories260K as an F32 GGUF (tests/tools/hf_to_gguf.py, with its vocabulary)."""
    import subprocess

    out = tmp_path_factory.mktemp("gguf") / "stories.gguf"
    subprocess.run([sys.executable, str(pathlib.Path(__file__).resolve().parents[1] / "tools" / "hf_to_gguf.py"),
                    str(STORIES), str(out), "--type", "F32", "--spm-vocab"], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def hub(tmp_path_factory, stories_gguf):
    readme = tmp_path_factory.mktemp("hub") / "README.md"
    readme.write_text("# a model card\n")
    h = Hub({"test/SmolLM2-GGUF": {"SmolLM2-135M-Instruct-Q4_1.gguf": SMOL, "mmproj-SmolLM2-f16.gguf": SMOL,
                                   "README.md": readme, "quants/stories 260K-F32.gguf": stories_gguf},
             "test/stories": {**{f: STORIES / f for f in HF_FILES}, "README.md": readme},
             "test/broken-GGUF": {"broken-Q4_K_M.gguf": SMOL}},
            corrupt={"broken-Q4_K_M.gguf"})
    yield h
    h.close()


def pull(hub, models, *args):
    env = dict(os.environ, HF_ENDPOINT=hub.url)
    env.pop("HF_TOKEN", None)
    return lowbit("pull", *args, "--models", models, env=env)


def run(model, models, *extra):
    r = lowbit("run", model, "Why is the sky blue?", "-n", 12, "--json", "--threads", 2, "--models", models, *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["ids"]


def test_the_loopback_hub_speaks_the_hubs_protocol(hub, tmp_path):
    hf = pytest.importorskip("huggingface_hub")
    import hashlib

    api = hf.HfApi(endpoint=hub.url)
    listed = {f.path: f for f in api.list_repo_tree("test/stories", recursive=True)}
    assert sorted(listed) == sorted(HF_FILES + ("README.md",))
    weights = (STORIES / "model.safetensors").read_bytes()
    assert listed["model.safetensors"].lfs.sha256 == hashlib.sha256(weights).hexdigest()
    for repo, name, source in (("test/SmolLM2-GGUF", "SmolLM2-135M-Instruct-Q4_1.gguf", SMOL),
                               ("test/stories", "config.json", STORIES / "config.json")):
        got = hf.hf_hub_download(repo, name, endpoint=hub.url, cache_dir=tmp_path / "hf-cache", token=False)
        assert pathlib.Path(got).read_bytes() == source.read_bytes()


def test_pulling_a_gguf_repository(hub, tmp_path, stories_gguf):
    models = tmp_path / "models"
    r = pull(hub, models, "hf.co/test/SmolLM2-GGUF:Q4_1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("pulled hf.co/test/SmolLM2-GGUF:Q4_1")
    assert run("hf.co/test/SmolLM2-GGUF:Q4_1", models) == run(str(SMOL), models)
    # The download is not kept beside the model it became (that would hold it twice on disk);
    # pulled again, the model is up to date: nothing is fetched.
    assert [p.name for p in (models / ".blobs").iterdir()] == []
    assert "(sha256:" + hashlib.sha256(SMOL.read_bytes()).hexdigest() + ")" in \
        json.loads(lowbit("show", "hf.co/test/SmolLM2-GGUF:Q4_1", "--json", "--models", models).stdout)["details"]["parent_model"]
    fetched = sum(p.startswith("/cdn/") for p in hub.requests)
    r = pull(hub, models, "hf.co/test/SmolLM2-GGUF:Q4_1")
    assert r.returncode == 0, r.stderr
    assert sum(p.startswith("/cdn/") for p in hub.requests) == fetched
    # The quantization is matched in any case (another tag, so another stored model).
    r = pull(hub, models, "hf.co/test/SmolLM2-GGUF:q4_1")
    assert r.returncode == 0, r.stderr
    assert "hf.co/test/SmolLM2-GGUF:q4_1" in lowbit("list", "--models", models).stdout
    # No quantization named and no Q4_K_M among several, or one it has not: the message lists
    # those it has (an mmproj file is no model).
    for name in ("hf.co/test/SmolLM2-GGUF", "hf.co/test/SmolLM2-GGUF:Q8_0"):
        r = pull(hub, models, name)
        assert r.returncode == 1 and "it has Q4_1, F32 " in r.stderr, r.stderr
    # One in a folder, its name with a space (fetched URL-encoded, stored under its base name).
    r = pull(hub, models, "hf.co/test/SmolLM2-GGUF:F32")
    assert r.returncode == 0, r.stderr
    assert run("hf.co/test/SmolLM2-GGUF:F32", models, "--raw") == run(str(stories_gguf), models, "--raw")


def test_pulling_a_safetensors_repository(hub, tmp_path):
    models = tmp_path / "models"
    r = pull(hub, models, "hf.co/test/stories:8")
    assert r.returncode == 0, r.stderr
    shown = json.loads(lowbit("show", "hf.co/test/stories:8", "--json", "--models", models).stdout)
    assert shown["details"]["quantization_level"] == "Q8_G32_SYM"
    assert lowbit("create", "by-path", STORIES, "--bits", 8, "--models", models).returncode == 0
    assert run("hf.co/test/stories:8", models, "--raw") == run("by-path", models, "--raw")


def test_a_corrupt_download_or_a_missing_repository_leaves_nothing(hub, tmp_path):
    models = tmp_path / "models"
    r = pull(hub, models, "hf.co/test/broken-GGUF")
    assert r.returncode == 1 and "hash to sha256:" in r.stderr, r.stderr
    assert not list((models / ".blobs").glob("*")) if (models / ".blobs").exists() else True
    assert "broken" not in lowbit("list", "--models", models).stdout
    r = pull(hub, models, "hf.co/test/nothere")
    assert r.returncode == 1 and "not on " + hub.url in r.stderr, r.stderr
    r = pull(hub, models, "a/b/c/d")
    assert r.returncode == 1 and "not [HOST/][NAMESPACE/]MODEL[:TAG]" in r.stderr, r.stderr


def test_api_pull_through_the_ollama_client(hub, registry, monkeypatch):
    ollama = pytest.importorskip("ollama")
    from serve_util import STORY, Server, model_store

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    server = Server(model_store(), "--parallel", "1")
    try:
        with ollama.Client(host=server.url) as oc:
            statuses = [p.status for p in oc.pull("hf.co/test/stories", stream=True)]
            assert statuses[0] == "pulling manifest" and statuses[-1] == "success", statuses
            assert "pulling model.safetensors" in statuses
            opts = {"num_predict": 12, "temperature": 0}
            # The session store's stories:latest is the same directory created at its default, 4 bits.
            assert oc.generate(model="hf.co/test/stories", prompt="Once", options=opts).response == \
                oc.generate(model=STORY, prompt="Once", options=opts).response
            assert oc.pull("hf.co/test/stories", stream=False).status == "success"
            oc.delete("hf.co/test/stories")
            # From an Ollama registry: its defaults come with it (/api/show reports them).
            assert oc.pull(f"{registry.host}/library/smol", insecure=True, stream=False).status == "success"
            shown = server.post("/api/show", {"model": "smol"}).json()
            assert shown["system"] == PIRATE and "PARAMETER num_predict 12" in shown["modelfile"]
            oc.delete("smol")
            for name, words in (("a/b/c/d", "not [HOST/][NAMESPACE/]MODEL[:TAG]"), ("hf.co/test/nothere", "not on")):
                with pytest.raises(ollama.ResponseError) as e:
                    list(oc.pull(name, stream=True))
                assert words in e.value.error, e.value.error
    finally:
        assert server.stop() == 0, server.stderr()


def test_the_token_goes_to_the_hub_and_never_to_the_cdn(hub, tmp_path):
    """$HF_TOKEN is sent as a Bearer token to the Hub, and not along a redirect to where the
    bytes are (a signed URL on another host), as Hugging Face's own client keeps it."""
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_TOKEN="hf_secret")
    hub.authorized.clear()
    r = lowbit("pull", "hf.co/test/SmolLM2-GGUF:Q4_1", "--models", tmp_path / "models", env=env)
    assert r.returncode == 0, r.stderr
    cdn_port = int(hub.cdn_url.rsplit(":", 1)[1])
    assert any(p.startswith("/api/models/test/SmolLM2-GGUF/tree") for _, p in hub.authorized)
    assert [p for port, p in hub.authorized if port == cdn_port] == []
    assert any(p.startswith("/cdn/") for p in hub.requests)


def test_run_pulls_a_hub_model_it_does_not_have(hub, tmp_path):
    models = tmp_path / "models"
    env = dict(os.environ, HF_ENDPOINT=hub.url)
    env.pop("HF_TOKEN", None)
    args = ("run", "hf.co/test/SmolLM2-GGUF:Q4_1", "Why is the sky blue?", "-n", 12, "--json", "--threads", 2,
            "--models", models)
    r = lowbit(*args, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ids"] == run(str(SMOL), models)
    assert "hf.co/test/SmolLM2-GGUF:Q4_1" in lowbit("list", "--models", models).stdout
    before = len(hub.requests)
    assert lowbit(*args, env=env).returncode == 0 and len(hub.requests) == before  # stored now: no Hub


PIRATE = "You are a pirate."


@pytest.fixture(scope="module")
def registry():
    r = Registry({"library/smol:latest": {"model": SMOL, "system": PIRATE, "template": "{{ .Prompt }}",
                                          "params": {"stop": ["!"], "temperature": 0, "num_predict": 12,
                                                     "mirostat": 1}},
                  "someone/smol:v1": {"model": SMOL},
                  "library/vision:latest": {"system": "no model layer"}})
    yield r
    r.close()


def test_pulling_from_an_ollama_registry(registry, tmp_path):
    """The manifest's GGUF layer with the chat template the GGUF carries (the manifest's Go template
    is not run), its system and params layers as the model's defaults (an option lowbit lacks,
    mirostat, left out): the model answers as the GGUF by path with those defaults as flags."""
    models = tmp_path / "models"
    cdn_port = int(registry.cdn_url.rsplit(":", 1)[1])
    before = sum(port == cdn_port for port, _ in registry.requests)
    r = lowbit("pull", "--insecure", f"{registry.host}/library/smol", "--models", models)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("pulled smol:latest")
    shown = json.loads(lowbit("show", "smol", "--json", "--models", models).stdout)
    assert shown["system"] == PIRATE and shown["parameters"] == {"stop": ["!"], "temperature": 0, "num_predict": 12}
    assert "im_start" in shown["template"]  # SmolLM2's own Jinja template, from the GGUF
    got = json.loads(lowbit("run", "smol", "Who are you?", "--json", "--threads", 2, "--models", models).stdout)
    ref = json.loads(lowbit("run", SMOL, "Who are you?", "--json", "--threads", 2, "--system", PIRATE, "--stop", "!",
                            "--temp", 0, "-n", 12).stdout)
    assert got["ids"] == ref["ids"]
    # The model blob came from the other origin (the 307); pulled again, it is up to date.
    assert sum(port == cdn_port for port, _ in registry.requests) == before + 1
    r = lowbit("pull", "--insecure", f"{registry.host}/library/smol", "--models", models)
    assert r.returncode == 0 and sum(port == cdn_port for port, _ in registry.requests) == before + 1, r.stderr
    r = lowbit("pull", "--insecure", f"{registry.host}/someone/smol:v1", "--models", models)
    assert r.returncode == 0 and "someone/smol:v1" in lowbit("list", "--models", models).stdout, r.stderr
    for name, words in ((f"{registry.host}/library/nothere", "not on " + registry.host),
                        (f"{registry.host}/library/vision", "has no GGUF model layer")):
        r = lowbit("pull", "--insecure", name, "--models", models)
        assert r.returncode == 1 and words in r.stderr, r.stderr


def test_an_interrupted_download_resumes_where_it_stopped(hub, tmp_path):
    """A download cut off halfway keeps what came (.blobs/.partial-HEX); the next pull asks only for
    the rest (a Range from there) and the model is the one the file makes."""
    models = tmp_path / "models"
    hub.cut_once.add("SmolLM2-135M-Instruct-Q4_1.gguf")
    r = pull(hub, models, "hf.co/test/SmolLM2-GGUF:Q4_1")
    assert r.returncode == 1, r.stderr
    [partial] = list((models / ".blobs").glob(".partial-*"))
    half = SMOL.stat().st_size // 2
    assert partial.stat().st_size == half
    r = pull(hub, models, "hf.co/test/SmolLM2-GGUF:Q4_1")
    assert r.returncode == 0, r.stderr
    assert hub.ranges[-1] == f"bytes={half}-"
    assert list((models / ".blobs").iterdir()) == []
    assert run("hf.co/test/SmolLM2-GGUF:Q4_1", models) == run(str(SMOL), models)
