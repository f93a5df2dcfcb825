"""Shared fixtures: the two real test models of shared/models, converted once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import lowbit

REPO = Path(__file__).resolve().parents[2]
MODELS = Path(os.environ.get("LOWBIT_SHARED_MODELS", REPO.parent / "shared" / "models"))


def hf_model(name: str) -> Path:
    path = MODELS / name
    if not (path / "config.json").is_file():
        pytest.skip(f"{path} not found (set LOWBIT_SHARED_MODELS to shared/models)")
    return path


def golden(name: str, steps: int) -> str:
    return (MODELS / name / f"expected_greedy_t0_steps{steps}.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def stories_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "stories260K_f32"
    lowbit.convert(hf_model("stories260K"), out, bits=32)
    return out


@pytest.fixture(scope="session")
def aidreams_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "aidreams260K_f32"
    lowbit.convert(hf_model("aidreams260K"), out, bits=32)
    return out


@pytest.fixture(scope="session")
def stories(stories_dir) -> lowbit.Model:
    return lowbit.Model(stories_dir)


@pytest.fixture(scope="session")
def stories_golden() -> str:
    # llama2.c's run.c: greedy, 256 steps from BOS, the text then a newline.
    return golden("stories260K", 256)


@pytest.fixture(scope="session")
def aidreams_golden() -> str:
    return golden("aidreams260K", 128)
