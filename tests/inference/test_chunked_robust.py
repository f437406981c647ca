"""Silence, non-finite input and long recordings in EarlyExitASR (tiny random model)."""

import pathlib

import numpy
import pytest
import soundfile
import torch

from speechbrain_ee.data.audio import AudioError
from speechbrain_ee.inference import EarlyExitASR
from speechbrain_ee.inference.chunked import find_cuts, longest_run_center
from speechbrain_ee.inference.random_model import write_random_model_dir

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def asr(tmp_path_factory):
    folder = tmp_path_factory.mktemp("asr") / "model"
    write_random_model_dir(str(folder), str(REPO / "hparams" / "conformer_ctc_small.yaml"))
    return EarlyExitASR.from_hparams(source=str(folder), savedir=str(tmp_path_factory.mktemp("savedir")))


def test_robust_digital_silence_gives_empty_transcript(asr, tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, numpy.zeros(3 * 16000), 16000)
    result = asr.recognize_file(path)
    assert (result.text, result.exit_index, result.layers) == ("", None, 0)
    assert asr.transcribe_file(path) == ""


def test_robust_silent_rows_of_a_batch_and_every_exit(asr):
    torch.manual_seed(0)
    wavs = torch.stack([torch.zeros(16000), 0.1 * torch.randn(16000), 1e-6 * torch.randn(16000)])
    results = asr.recognize_batch(wavs)
    assert [r.text for r in results][0::2] == ["", ""]
    assert results[1].layers == asr.exit_layers[-1] and results[1].text == asr.recognize_batch(wavs[1:2])[0].text
    every = asr.recognize_every_exit(wavs)
    assert all(row[0] == "" and row[2] == "" for row in every)


def test_robust_non_finite_waveforms_rejected(asr):
    wavs = 0.1 * torch.randn(2, 16000)
    wavs[1, 5] = float("nan")
    with pytest.raises(AudioError, match="non-finite"):
        asr.recognize_batch(wavs)


def test_robust_longest_run_center():
    flags = torch.tensor([0, 1, 1, 0, 1, 1, 1, 1, 0], dtype=torch.bool)
    assert longest_run_center(flags) == 5


def test_robust_cuts_bound_segments(asr):
    torch.manual_seed(0)
    wav = 0.1 * torch.randn(25 * 16000)
    cuts = find_cuts(asr, wav, max_seconds=6, search_seconds=2)
    assert cuts[0] == 0 and cuts[-1] == wav.shape[0]
    sizes = numpy.diff(cuts)
    assert (sizes > 0).all() and (sizes <= 6 * 16000).all() and len(cuts) >= 6


def test_robust_long_input_recognised_in_segments(asr, monkeypatch):
    torch.manual_seed(0)
    pieces = [0.1 * torch.randn(16000 * 3) for _ in range(4)]
    gap = torch.zeros(16000)
    wav = torch.cat([pieces[0], gap, pieces[1], gap, pieces[2], gap, pieces[3]])
    monkeypatch.setattr(asr.hparams, "chunk_seconds", 8, raising=False)
    result = asr.recognize_batch(wav[None], selector="entropy", threshold=0.5)[0]
    assert result.segments is not None and len(result.segments) >= 2
    assert result.segments[-1][1] == pytest.approx(wav.shape[0] / 16000)
    assert all(end - start <= 8 for start, end, _ in result.segments)
    texts = [seg.text for _, _, seg in result.segments if seg.text]
    assert result.text == " ".join(texts)
    assert min(asr.exit_layers) <= result.layers <= max(asr.exit_layers)
    monkeypatch.setattr(asr.hparams, "chunk_seconds", None, raising=False)
    assert asr.recognize_batch(wav[None])[0].segments is None
