"""EarlyExitASR, dynamic inference and the exit sweep on an exported tiny
random attention (AED) model: the exit's own decoder decodes, the encoder
stops at the exit, N-best confidence comes from the joint beam search."""

import pathlib

import numpy
import pytest
import soundfile
import torch

from speechbrain_ee.inference import EarlyExitASR
from speechbrain_ee.inference.decoders import AttentionTextDecoder
from speechbrain_ee.testing import TINY_ARCH, write_random_model_dir
from speechbrain_ee.selection import ConfidenceSelector
from speechbrain_ee.inference.exit_table import decode_exits
from speechbrain_ee.selection.sweep import simulate

REPO = pathlib.Path(__file__).resolve().parents[2]
TINY_AED = {**TINY_ARCH, "num_decoder_layers": 1, "d_ffn_decoder": 32}


@pytest.fixture(scope="module")
def asr(tmp_path_factory):
    folder = write_random_model_dir(
        str(tmp_path_factory.mktemp("aed") / "model"), str(REPO / "hparams" / "conformer_aed_small.yaml"),
        arch=TINY_AED, attention_beam=3,
    )
    return EarlyExitASR.from_hparams(source=folder, savedir=str(tmp_path_factory.mktemp("savedir")))


@pytest.fixture(scope="module")
def wavs():
    rng = numpy.random.default_rng(1)
    return [torch.tensor(rng.standard_normal(n) * 0.1, dtype=torch.float32) for n in (16000, 9000, 12000)]


def padded(wavs):
    from speechbrain.utils.data_utils import batch_pad_right

    return batch_pad_right(wavs)


def test_exported_aed_uses_attention_decoder(asr):
    assert isinstance(asr.decoder, AttentionTextDecoder)
    assert asr.decoder.ctc_weight == pytest.approx(0.4)
    assert "attention" in repr(asr.decoder)


def test_fixed_exit_runs_only_that_exits_decoder(asr, wavs, monkeypatch):
    calls = []
    for i, decoder in enumerate(asr.model.decoders):
        monkeypatch.setattr(decoder, "_run", lambda *a, _i=i, _f=decoder._run, **k: calls.append(_i) or _f(*a, **k))
    layers_run = []
    for i, layer in enumerate(asr.model.encoder.layers):
        monkeypatch.setattr(layer, "forward", lambda *a, _i=i, _f=layer.forward, **k: layers_run.append(_i) or _f(*a, **k))
    batch, lens = padded(wavs)
    out = asr.recognize_batch(batch, lens, exit=1)
    assert [t.layers for t in out] == [2, 2, 2]
    assert set(calls) == {1}
    assert sorted(set(layers_run)) == [0, 1]
    assert all(isinstance(t.text, str) for t in out)


def test_batch_equals_single_utterances(asr, wavs):
    batch, lens = padded(wavs)
    together = asr.recognize_batch(batch, lens, selector="entropy", threshold=0.05)
    alone = [asr.recognize_batch(w[None], None, selector="entropy", threshold=0.05)[0] for w in wavs]
    assert [(t.text, t.exit_index) for t in together] == [(t.text, t.exit_index) for t in alone]


def test_confidence_uses_attention_nbest(asr, wavs, tmp_path):
    selector = asr.prepare_selector(ConfidenceSelector(0.5, topk=3))
    assert selector.needs_exit_output and selector.searcher is None
    path = tmp_path / "a.wav"
    soundfile.write(str(path), wavs[0].numpy(), 16000)
    result = asr.recognize_file(str(path), selector="confidence", threshold=0.0, topk=3)
    assert result.exit_index == 0  # any confidence is above 0: the first exit stops
    assert result.text is not None


def test_sweep_table_matches_online_run(asr, wavs):
    batch, lens = padded(wavs)
    inputs, lengths = asr.encode_inputs(batch, lens)
    measurers = [asr.prepare_selector(ConfidenceSelector(0.5, topk=3))]
    table = decode_exits(asr.model, [(["a", "b", "c"], inputs, lengths, ["X", "Y", "Z"])], asr.decoder, measurers)
    assert len(table.hypotheses[0]) == 4
    values = [v for row in table.measures["confidence"] for v in row[:-1]]
    assert all(1 / 3 - 1e-6 <= v <= 1 + 1e-6 for v in values)
    threshold = float(numpy.median(values))
    offline = simulate(ConfidenceSelector(threshold, topk=3), table)
    online = asr.recognize_batch(batch, lens, selector="confidence", threshold=threshold, topk=3)
    assert [t.exit_index for t in online] == list(offline)
    assert [t.text for t in online] == [table.hypotheses[i][e] for i, e in enumerate(offline)]


def test_lexicon_penalty_reranks_the_attention_nbest(asr, wavs):
    """With an N-best lexicon penalty the exit's decoder returns the best
    hypothesis of its beam with the fewest unknown words; a negligible
    penalty keeps the plain search's choice."""
    from speechbrain_ee.aed_decoding import nbest_transcripts
    from speechbrain_ee.decoding import nbest_rescorer

    batch, lens = padded(wavs[:1])
    inputs, lengths = asr.encode_inputs(batch, lens)
    state, log_probs = asr.model.step(asr.model.start(inputs, lengths), 1)
    states = asr.model.exit_output(state, 1)
    plain = asr.decoder(log_probs, state.lengths, states, 1)
    nbest = nbest_transcripts(asr.decoder.searcher(1, topk=3), states, torch.ones(1), asr.decoder.tokenizer)[0]
    assert " ".join(nbest[0][0]) == plain[0]
    words = {w for hyp, _ in nbest for w in hyp}
    lexicon = set(nbest[-1][0]) or {"NOTAWORD"}  # only the last hypothesis is free of unknown words
    unknown = [sum(w not in lexicon for w in hyp) for hyp, _ in nbest]
    assert words, "the random model should spell some words"

    def decode(penalty):
        decoder = AttentionTextDecoder(
            asr.model, asr.decoder.tokenizer, asr.decoder.searcher_factory, asr.decoder.blank_index,
            asr.decoder.eos_index, ctc_weight=asr.decoder.ctc_weight,
            rescorer=nbest_rescorer(lexicon=lexicon, oov_penalty=penalty),
        )
        assert "unknown words" in repr(decoder)
        return decoder(log_probs, state.lengths, states, 1)[0]

    assert decode(1e-9) == plain[0]
    strict = decode(1e6)
    assert sum(w not in lexicon for w in strict.split()) == min(unknown)


def test_recognize_every_exit_uses_each_exits_decoder(asr, wavs):
    batch, lens = padded(wavs)
    every = asr.recognize_every_exit(batch, lens)
    assert len(every) == len(asr.exit_layers)
    for exit_index, texts in enumerate(every):
        assert texts == [t.text for t in asr.recognize_batch(batch, lens, exit=exit_index)]
