"""Silence, non-finite input and long recordings in EarlyExitASR (tiny random model)."""

import pathlib

import numpy
import pytest
import soundfile
import torch

from speechbrain_ee.data.audio import AudioError
from speechbrain_ee.inference import EarlyExitASR
from speechbrain_ee.inference.chunked import find_cuts, pause_cuts
from speechbrain_ee.testing import write_random_model_dir

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


def test_robust_cuts_fall_in_pauses_and_bound_segments():
    torch.manual_seed(0)
    wav = 0.1 * torch.randn(40 * 16000)
    for pause in (5, 11, 14):  # seconds: gaps of 0.6 s
        wav[pause * 16000 : pause * 16000 + 9600] *= 1e-3
    assert [round(c / 16000, 1) for c in pause_cuts(wav, 16000)] == [5.3, 11.3, 14.3]
    cuts = find_cuts(wav, 16000, max_seconds=8, search_seconds=3)
    assert [round(c / 16000, 1) for c in cuts[1:4]] == [5.3, 11.3, 14.3]
    sizes = numpy.diff(cuts)
    assert cuts[-1] == wav.shape[0] and (sizes > 0).all() and (sizes <= 8 * 16000).all()


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
