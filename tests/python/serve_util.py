"""Starts `lowbit serve` on a free loopback port for the server tests (test_serve_*.py).

The models come from ../shared/models: SmolLM2-135M-Instruct (its GGUF, with a chat template)
and stories260K (an HF directory, no chat template), put into one temporary model store per test
session through the server's own /api/create, as a user would.
"""

import atexit
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import httpx
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
SMOLLM2_GGUF = next((SHARED / "models" / "smollm2-135m-instruct").glob("*.gguf"), None)
STORIES = SHARED / "models" / "stories260K"
BIN = pathlib.Path(os.environ.get("LOWBIT_BIN", REPO / "build" / "lowbit"))

SMOL = "smollm2:latest"
STORY = "stories:latest"

skip_unless_ready = [
    pytest.mark.skipif(not BIN.exists(), reason=f"lowbit binary not built ({BIN}; set LOWBIT_BIN)"),
    pytest.mark.skipif(SMOLLM2_GGUF is None or not STORIES.exists(), reason="../shared/models not present"),
]


class Server:
    """A `lowbit serve` process; url is its base address."""

    def __init__(self, models_dir, *args):
        self.log = tempfile.NamedTemporaryFile(prefix="lowbit_serve_", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [str(BIN), "serve", "--port", "0", "--models", str(models_dir), "--threads", "2", *map(str, args)],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"lowbit serve did not start: {line!r}\n{self.stderr()}")
        # "lowbit serve: listening on http://127.0.0.1:PORT (models in DIR)"
        self.url = line.split("listening on ")[1].split(" ")[0]
        self.port = int(self.url.rsplit(":", 1)[1])

    def stderr(self):
        return pathlib.Path(self.log.name).read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def get(self, path, **kw):
        return httpx.get(self.url + path, timeout=120, **kw)

    def post(self, path, body=None, **kw):
        return httpx.post(self.url + path, json=body, timeout=120, **kw)

    def metric(self, name, model=None):
        """A gauge's or counter's value from /metrics (summed over its labels, or one model's)."""
        total = 0.0
        for line in self.get("/metrics").text.splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            key, value = line.rsplit(" ", 1)
            if key != name and not key.startswith(name + "{"):
                continue
            if model is not None and f'model="{model}"' not in key:
                continue
            total += float(value)
        return total

    def loaded(self):
        return [m["name"] for m in self.get("/api/ps").json()["models"]]


_store = {}


def model_store():
    """A model store holding SMOL and STORY, made once per session through /api/create."""
    if "dir" not in _store:
        d = pathlib.Path(tempfile.mkdtemp(prefix="lowbit_store_"))
        atexit.register(shutil.rmtree, d, True)
        s = Server(d)
        try:
            for name, source in ((SMOL, SMOLLM2_GGUF), (STORY, STORIES)):
                r = s.post("/api/create", {"model": name, "from": str(source), "stream": False})
                assert r.status_code == 200, r.text
        finally:
            s.stop()
        _store["dir"] = d
    return _store["dir"]


def start(*args):
    return Server(model_store(), *args)


def wait_until(cond, timeout=20.0, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def tokenize(text, special=True):
    """Token ids of text by SmolLM2's tokenizer through `lowbit tokenize` (its HF-reference-tested
    tokenizer), not through the server."""
    args = [str(BIN), "tokenize", str(SMOLLM2_GGUF), text]
    if not special:
        args.insert(2, "--no-bos")
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [int(t) for t in r.stdout.split()]


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")
