"""What the tests that drive the built `lowbit` binary share: where it and the shared models are,
and one way to run it ($LOWBIT_BIN, else <repo>/build/lowbit)."""

import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
BIN = pathlib.Path(os.environ.get("LOWBIT_BIN", REPO / "build" / "lowbit"))

needs_bin = pytest.mark.skipif(not BIN.exists(), reason=f"lowbit binary not built ({BIN}; set LOWBIT_BIN)")


def lowbit(*args, **kw):
    """Runs the CLI to completion, text out. stdin is /dev/null unless given: a command that
    behaves differently on a terminal (`lowbit run` without a prompt chats) sees none."""
    if "input" not in kw:
        kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=600, **kw)
