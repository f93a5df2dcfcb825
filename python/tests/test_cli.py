"""python -m lowbit runs the CLI bundled in the package."""

from __future__ import annotations

import subprocess
import sys

import lowbit.__main__ as cli


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lowbit", *args], capture_output=True, text=True, timeout=300)


def test_bundled_binary_is_installed():
    assert cli.cli_path().is_file()


def test_help():
    r = run("--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: lowbit COMMAND")
    assert "convert" in r.stdout and "run" in r.stdout


def test_version_matches_the_module():
    import lowbit

    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"lowbit {lowbit.__version__}"


def test_run_reproduces_llama2c(stories_dir, stories_golden):
    r = run("run", str(stories_dir), "-p", "", "-n", "256")
    assert r.returncode == 0, r.stderr
    assert r.stdout == stories_golden


def test_errors_exit_nonzero_with_a_message():
    r = run("run", "/nonexistent/model", "-p", "")
    assert r.returncode == 1
    assert "/nonexistent/model" in r.stderr
