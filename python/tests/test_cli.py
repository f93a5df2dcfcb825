"""python -m lowbit runs the CLI bundled in the package."""

from __future__ import annotations

import os
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


def test_eval_plot_finds_the_installed_plot_module(tmp_path):
    # The installed package has no python/ folder and no .venv beside its lowbit executable: the
    # plot script is the package's lowbit/plot.py, run by the package's Python.
    from conftest import hf_model

    stories = hf_model("stories260K")
    text = stories.parents[1] / "corpus" / "tinystories_sample.txt"
    sweep = ["eval", "--sweep", str(stories), "--text", str(text), "--bits", "8", "--groups", "32", "--quantizers",
             "rtn", "--max-tokens", "256", "--ctx", "64", "--threads", "1", "--plot"]
    r = run(*sweep, str(tmp_path / "a.png"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "a.png").read_bytes().startswith(b"\x89PNG")
    # The bundled binary run directly, without LOWBIT_PYTHON: the Python of the prefix the
    # package is installed under.
    env = {k: v for k, v in os.environ.items() if k != "LOWBIT_PYTHON"}
    r = subprocess.run([str(cli.cli_path()), *sweep, str(tmp_path / "b.png")], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "b.png").is_file()


def test_usage_errors_exit_2_with_one_line():
    r = run("run", "/nonexistent/model", "-p", "x", "-n", "abc")
    assert r.returncode == 2
    assert r.stderr.strip() == "lowbit run: -n: 'abc' is not an integer (see lowbit run --help)"


def test_help_lists_version():
    assert "--version" in run("--help").stdout
