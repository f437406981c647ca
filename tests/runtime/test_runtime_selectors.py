"""The runtime's numpy selectors and CTC decoding agree with the torch/SpeechBrain ones."""

import numpy
import pytest
import torch
from speechbrain.decoders.ctc import CTCPrefixBeamSearcher, ctc_greedy_decode

from speechbrain_ee.runtime.decoding import ctc_greedy, ctc_prefix_beam, edit_distance
from speechbrain_ee.runtime.selectors import make_selector, mean_frame_entropy
from speechbrain_ee.selection import measures
from speechbrain_ee.selection import selectors as torch_selectors

EXIT_LAYERS = [2, 4, 6, 8, 10, 12]


def random_posteriors(generator, utterances=40, frames=30, classes=12):
    """Log-posteriors (exits, utterances, frames, classes), sharper at deeper
    exits, and real frame counts."""
    logits = torch.randn(len(EXIT_LAYERS), utterances, frames, classes, generator=generator)
    sharpness = torch.rand(len(EXIT_LAYERS), utterances, 1, 1, generator=generator) * 6
    log_probs = torch.log_softmax(logits * sharpness, dim=-1)
    lengths = torch.randint(1, frames + 1, (utterances,), generator=generator)
    return log_probs, lengths


def torch_exits(selector, log_probs, lengths, texts=None):
    """Exit of each utterance under a torch selector (whole batch at each exit)."""
    index = torch.arange(log_probs.shape[1])
    first = selector.start(EXIT_LAYERS)
    exits = torch.full((log_probs.shape[1],), len(EXIT_LAYERS) - 1)
    done = torch.zeros(log_probs.shape[1], dtype=torch.bool)
    for exit_index in range(first, len(EXIT_LAYERS) - 1):
        live = index[~done]
        m = selector.measure(log_probs[exit_index, live], lengths[live],
                             None if texts is None else [texts[exit_index][i] for i in live])
        stop = selector.decide(exit_index, m, live)
        exits[live[stop]] = exit_index
        done[live[stop]] = True
    return exits.tolist()


def runtime_exits(selector, log_probs, lengths, texts=None):
    exits = []
    for utt, length in enumerate(lengths.tolist()):
        first = selector.first_exit(EXIT_LAYERS)
        chosen = len(EXIT_LAYERS) - 1
        for exit_index in range(first, len(EXIT_LAYERS) - 1):
            text = None if texts is None else texts[exit_index][utt]
            if selector.stops(exit_index, log_probs[exit_index, utt, :length].numpy(), text):
                chosen = exit_index
                break
        exits.append(chosen)
    return exits


@pytest.mark.parametrize("name, value", [("fixed", 3), ("budget", 7), ("entropy", None)])
def test_runtime_selectors_pick_the_torch_selectors_exits(name, value):
    log_probs, lengths = random_posteriors(torch.Generator().manual_seed(1))
    if value is None:  # an entropy threshold in the middle of the measured ones
        value = float(measures.mean_frame_entropy(log_probs[2], lengths).median())
    expected = torch_exits(torch_selectors.make_selector(name, value), log_probs, lengths)
    got = runtime_exits(make_selector(name, value), log_probs, lengths)
    assert got == expected
    assert len(set(got)) > 1 or name != "entropy"


@pytest.mark.parametrize("name, value", [("agreement", 0.2), ("patience", 2)])
def test_runtime_transcript_selectors_pick_the_torch_selectors_exits(name, value):
    rng = numpy.random.default_rng(0)
    texts = [["".join(rng.choice(list("AB "), size=5)) for _ in range(40)] for _ in EXIT_LAYERS]
    for exit_index in range(1, len(EXIT_LAYERS)):  # later exits often repeat the previous text
        texts[exit_index] = [prev if rng.random() < 0.5 else new
                             for prev, new in zip(texts[exit_index - 1], texts[exit_index])]
    log_probs, lengths = random_posteriors(torch.Generator().manual_seed(2))
    expected = torch_exits(torch_selectors.make_selector(name, value), log_probs, lengths, texts)
    assert runtime_exits(make_selector(name, value), log_probs, lengths, texts) == expected


def test_runtime_entropy_equals_torch_measure():
    log_probs, lengths = random_posteriors(torch.Generator().manual_seed(3))
    expected = measures.mean_frame_entropy(log_probs[0], lengths)
    got = [mean_frame_entropy(log_probs[0, i, :n].numpy()) for i, n in enumerate(lengths.tolist())]
    numpy.testing.assert_allclose(got, expected.numpy(), rtol=1e-5)


def test_runtime_greedy_equals_speechbrain_greedy():
    log_probs, lengths = random_posteriors(torch.Generator().manual_seed(4))
    blank = 11
    expected = ctc_greedy_decode(log_probs[5], lengths / log_probs.shape[2], blank_id=blank)
    got = [ctc_greedy(log_probs[5, i, :n].numpy(), blank) for i, n in enumerate(lengths.tolist())]
    assert got == [list(map(int, e)) for e in expected]


def test_runtime_prefix_beam_matches_speechbrain_on_peaked_posteriors():
    """Same best prefix as SpeechBrain's CTCPrefixBeamSearcher (no LM)."""
    vocab = [chr(ord("a") + i) for i in range(11)] + ["<blank>"]
    searcher = CTCPrefixBeamSearcher(blank_index=11, vocab_list=vocab, beam_size=10, space_token="|")
    log_probs, lengths = random_posteriors(torch.Generator().manual_seed(5), utterances=20)
    same = 0
    for i, n in enumerate(lengths.tolist()):
        lp = log_probs[5, i : i + 1, :n]
        expected = searcher(lp)[0][0].text.replace(" ", "")
        got = "".join(vocab[t] for t in ctc_prefix_beam(lp[0].numpy(), 11, beam_size=10))
        same += got == expected
    assert same >= 18, f"{same} of 20 transcripts equal"


def test_runtime_edit_distance_equals_speechbrain():
    rng = numpy.random.default_rng(6)
    for _ in range(20):
        a, b = ("".join(rng.choice(list("ABC"), size=rng.integers(0, 8))) for _ in range(2))
        assert edit_distance(a, b) == measures.edit_distance(a, b)
