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


@pytest.fixture(scope="session")
def librispeech_dir():
    """The real LibriSpeech subsets (train-clean-5 speakers, dev-clean-2); skipped if absent."""
    path = shared_data_dir() / "LibriSpeech"
    if not (path / "train-clean-5").is_dir() or not (path / "dev-clean-2").is_dir():
        pytest.skip(f"LibriSpeech subsets not found at {path} (set SBEE_DATA to the folder holding LibriSpeech/)")
    return path


@pytest.fixture(scope="session")
def tedlium_corpus(librispeech_dir, tmp_path_factory):
    """A TED-LIUM 3 ``legacy`` layout (STM + NIST SPHERE talks) of real
    LibriSpeech speech: ``(root, expected rows per split, awkward rows per talk)``."""
    from corpus_layouts import build_tedlium

    root = tmp_path_factory.mktemp("TEDLIUM_release-3")
    expected, awkward = build_tedlium(root, librispeech_dir)
    return root, expected, awkward


@pytest.fixture(scope="session")
def voxpopuli_corpus(an4_dir, tmp_path_factory):
    """A VoxPopuli-en corpus in the layout of the official ``get_asr_data``
    (TSV + Ogg clips) of real AN4 speech: ``(root, {split: {id: TEXT}}, awkward rows per split)``."""
    from corpus_layouts import build_voxpopuli_clips

    root = tmp_path_factory.mktemp("voxpopuli")
    expected, awkward = build_voxpopuli_clips(root, an4_dir)
    return root, expected, awkward
