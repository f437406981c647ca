"""Shared fixtures: where the real speech lives, the benchmark scripts, seeding."""

import importlib.util
import os
import pathlib
import sys

import pytest
import torch

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def shared_data_dir():
    """``$SBEE_DATA`` or ``../shared/data`` beside the repository."""
    return pathlib.Path(os.environ.get("SBEE_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def an4_dir():
    """The real AN4 corpus; the test is skipped with a clear message if absent."""
    path = shared_data_dir() / "an4"
    if not (path / "etc" / "an4_train.transcription").is_file():
        pytest.skip(f"AN4 corpus not found at {path} (set SBEE_DATA to the folder holding an4/)")
    return path


@pytest.fixture
def load_benchmark():
    """``load_benchmark(name)``: the module ``benchmarks/<name>.py`` (not a
    package; its folder goes on ``sys.path``, as when the script runs, for its
    shared helpers in ``benchmarks/benchmarking.py``)."""
    folder = str(REPO_ROOT / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)

    def load(name):
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(1)
