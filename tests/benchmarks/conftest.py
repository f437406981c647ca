"""Loads the scripts under benchmarks/ (not a package) for their smoke tests."""

import importlib.util
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def load_benchmark():
    """``load_benchmark(name)``: the module ``benchmarks/<name>.py``."""
    def load(name):
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load
