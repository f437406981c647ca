"""ConcatUtterances: joined utterance pairs, labels joined the same way,
also through the CTC Brain's training inputs/targets."""

import pytest
import speechbrain as sb
import torch
from speechbrain.dataio.batch import PaddedBatch

from speechbrain_ee.brains.ctc import EarlyExitCTCBrain
from speechbrain_ee.data.concat import ConcatUtterances


def counts(rel, width):
    return torch.round(rel * width).long().tolist()


def test_concat_joins_rows_and_labels_with_the_same_pairs():
    torch.manual_seed(0)
    lengths = [5, 9, 3, 7]
    wavs = torch.nn.utils.rnn.pad_sequence([torch.full((n,), float(i + 1)) for i, n in enumerate(lengths)],
                                           batch_first=True)
    tokens = torch.nn.utils.rnn.pad_sequence([torch.arange(i + 2) + 10 * i for i in range(4)], batch_first=True)
    token_lens = torch.tensor([i + 2 for i in range(4)]) / tokens.shape[1]
    concat = ConcatUtterances(prob=0.5, pause_seconds=(0.0, 0.5), sample_rate=10)
    joined, rel = concat(wavs, torch.tensor(lengths) / wavs.shape[1])
    assert concat.pairs and len(concat.pairs) < 4  # some joined, some not (seeded)
    new_tokens, new_token_lens = concat.join_labels(tokens, token_lens)
    n_wav, n_tok = counts(rel, joined.shape[1]), counts(new_token_lens, new_tokens.shape[1])
    joined_rows = dict(concat.pairs)
    for i in range(4):
        row = joined[i, :n_wav[i]]
        if i in joined_rows:
            j = joined_rows[i]
            assert j != i
            assert torch.equal(row[:lengths[i]], wavs[i, :lengths[i]])
            assert torch.equal(row[-lengths[j]:], wavs[j, :lengths[j]])
            pause = row[lengths[i]:n_wav[i] - lengths[j]]
            assert 0 <= len(pause) <= 5 and not pause.any()
            want = torch.cat([tokens[i, :i + 2], tokens[j, :j + 2]])
        else:
            assert torch.equal(row, wavs[i, :lengths[i]])
            want = tokens[i, :i + 2]
        assert torch.equal(new_tokens[i, :n_tok[i]], want)


def test_concat_separator_and_passthrough():
    concat = ConcatUtterances(prob=1.0, pause_seconds=(0, 0), separator_index=9)
    concat(torch.ones(2, 4), torch.ones(2))
    tokens, _ = concat.join_labels(torch.tensor([[1, 2], [3, 4]]), torch.ones(2))
    assert tokens.tolist() == [[1, 2, 9, 3, 4], [3, 4, 9, 1, 2]]
    off = ConcatUtterances(prob=0.0)
    wavs = torch.rand(3, 8)
    out, lens = off(wavs, torch.ones(3))
    assert out is wavs and off.pairs == []
    with pytest.raises(ValueError, match="concat prob"):
        ConcatUtterances(prob=1.5)
    with pytest.raises(ValueError, match="pause_seconds"):
        ConcatUtterances(pause_seconds=(0.5, 0.1))


def test_ctc_brain_joins_training_inputs_and_targets_only_in_training():
    torch.manual_seed(1)
    batch = PaddedBatch([
        {"id": "a", "sig": torch.full((6,), 1.0), "tokens": torch.tensor([1, 2]), "wrd": "A"},
        {"id": "b", "sig": torch.full((4,), 2.0), "tokens": torch.tensor([3]), "wrd": "B"},
    ])
    brain = EarlyExitCTCBrain(
        modules={"model": torch.nn.Linear(1, 1)},
        hparams={"tokenizer": object(), "blank_index": 4,
                 "concat_augment": ConcatUtterances(prob=1.0, pause_seconds=(0, 0))},
        run_opts={"device": "cpu"},
    )
    wavs, lengths = brain.batch_inputs(batch, sb.Stage.TRAIN)
    tokens, token_lens = brain.batch_targets(batch, sb.Stage.TRAIN)
    assert wavs[0].tolist() == [1.0] * 6 + [2.0] * 4 and tokens[0].tolist() == [1, 2, 3]
    assert tokens[1].tolist() == [3, 1, 2]
    wavs, _ = brain.batch_inputs(batch, sb.Stage.VALID)
    tokens, _ = brain.batch_targets(batch, sb.Stage.VALID)
    assert wavs.shape[1] == 6 and tokens.tolist() == [[1, 2], [3, 0]]
