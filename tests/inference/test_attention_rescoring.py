"""Attention rescoring of an exit's CTC prefix beam (``aed_decoding: rescoring``)
on an exported tiny random AED model."""

import pathlib

import numpy
import pytest
import torch

from speechbrain_ee.aed_decoding import attention_scores
from speechbrain_ee.decoding import beam_transcripts
from speechbrain_ee.inference import EarlyExitASR
from speechbrain_ee.inference.decoders import AttentionRescoringDecoder, attention_decoder
from speechbrain_ee.testing import TINY_ARCH, write_random_model_dir
from speechbrain_ee.selection import ConfidenceSelector
from speechbrain_ee.selection.measures import nbest_posterior, nbest_searcher

REPO = pathlib.Path(__file__).resolve().parents[2]
TINY_AED = {**TINY_ARCH, "num_decoder_layers": 1, "d_ffn_decoder": 32}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_random_model_dir(
        str(tmp_path_factory.mktemp("aed") / "model"), str(REPO / "hparams" / "conformer_aed_small.yaml"),
        arch=TINY_AED, attention_beam=3,
    )


@pytest.fixture(scope="module")
def asr(model_dir, tmp_path_factory):
    return EarlyExitASR.from_hparams(
        source=model_dir, savedir=str(tmp_path_factory.mktemp("savedir")), aed_decoding="rescoring", beam_size=6,
    )


@pytest.fixture(scope="module")
def exit_inputs(asr):
    """CTC log-posteriors, lengths and states of exit 1 for one random utterance."""
    wav = torch.tensor(numpy.random.default_rng(3).standard_normal(16000) * 0.1, dtype=torch.float32)
    inputs, lengths = asr.encode_inputs(wav[None], torch.ones(1))
    state, log_probs = asr.model.step(asr.model.start(inputs, lengths), 1)
    return log_probs.detach(), state.lengths, asr.model.exit_output(state, 1).detach()


def test_exported_aed_can_use_attention_rescoring(asr):
    assert isinstance(asr.decoder, AttentionRescoringDecoder)
    assert asr.decoder.beam_size == 6 and asr.decoder.ctc_weight == pytest.approx(0.4)
    assert "attention rescoring" in repr(asr.decoder)


def test_unknown_decoding_is_a_clear_error(asr):
    asr.hparams.aed_decoding = "viterbi"
    try:
        with pytest.raises(ValueError, match="aed_decoding"):
            attention_decoder(asr.model, asr.hparams, asr.hparams.test_search, ctc_weight=0.3)
    finally:
        asr.hparams.aed_decoding = "rescoring"


def test_attention_score_ignores_the_other_hypotheses_padding(asr, exit_inputs):
    _, _, states = exit_inputs
    alone = attention_scores(asr.model, 1, states, [[3, 4]], bos_index=1, eos_index=2)
    batched = attention_scores(asr.model, 1, states, [[5, 6, 3, 4, 5], [3, 4]], bos_index=1, eos_index=2)
    assert batched[1] == pytest.approx(alone[0], abs=1e-5)


def test_attention_score_is_the_teacher_forced_log_probability(asr, exit_inputs):
    _, _, states = exit_inputs
    tokens = [3, 4, 5]
    with torch.no_grad():
        log_probs = asr.model.ce_heads(1, asr.model.decoders[1](
            torch.tensor([[1] + tokens]), states, torch.tensor([states.shape[1]])))
    expected = sum(float(log_probs[0, i, t]) for i, t in enumerate(tokens + [2]))
    assert attention_scores(asr.model, 1, states, [tokens], 1, 2)[0] == pytest.approx(expected, abs=1e-5)


def test_ctc_weight_one_keeps_the_prefix_beams_choice(asr, exit_inputs):
    log_probs, lengths, states = exit_inputs
    decoder = AttentionRescoringDecoder(asr.model, asr.hparams.tokenizer, asr.hparams.blank_index,
                                        bos_index=1, eos_index=2, beam_size=6, ctc_weight=1.0)
    searcher = nbest_searcher(decoder.searcher(6).vocab_list, asr.hparams.blank_index, topk=6)
    ctc_best = " ".join(beam_transcripts(searcher, log_probs.cpu(), None)[0])
    assert decoder(log_probs, lengths, states, 1) == [ctc_best]


def test_ctc_weight_zero_picks_the_best_attention_score(asr, exit_inputs):
    log_probs, lengths, states = exit_inputs
    decoder = AttentionRescoringDecoder(asr.model, asr.hparams.tokenizer, asr.hparams.blank_index,
                                        bos_index=1, eos_index=2, beam_size=6, ctc_weight=0.0)
    hyps = decoder.searcher(6)(log_probs.cpu())[0]
    tokens = [asr.hparams.tokenizer.encode_as_ids(h.text) for h in hyps]
    scores = attention_scores(asr.model, 1, states, tokens, 1, 2)
    best = hyps[max(range(len(hyps)), key=scores.__getitem__)].text
    assert decoder(log_probs, lengths, states, 1) == [" ".join(best.split())]


def test_nbest_scores_feed_the_confidence_selector(asr, exit_inputs):
    _, lengths, states = exit_inputs
    scores = asr.decoder.nbest_scores(states, lengths, 1, topk=5)
    assert len(scores) == 1 and 1 <= len(scores[0]) <= 5
    assert scores[0] == sorted(scores[0], reverse=True)
    selector = asr.prepare_selector(ConfidenceSelector(0.5, topk=5))
    assert selector.needs_exit_output
    measured = selector.measure(None, lengths, exit_output=states, exit_index=1)
    assert float(measured[0]) == pytest.approx(nbest_posterior(scores[0]))


def test_bad_arguments_are_rejected(asr):
    with pytest.raises(ValueError, match="beam_size"):
        AttentionRescoringDecoder(asr.model, asr.hparams.tokenizer, 1, 1, 2, beam_size=0)
    with pytest.raises(ValueError, match="ctc_weight"):
        AttentionRescoringDecoder(asr.model, asr.hparams.tokenizer, 1, 1, 2, ctc_weight=1.5)
