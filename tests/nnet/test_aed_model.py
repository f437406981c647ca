"""Shapes, per-exit independence and incremental use of the early-exit AED model."""

from functools import partial

import pytest
import torch
from speechbrain.decoders.seq2seq import S2STransformerBeamSearcher

from speechbrain_ee.aed_decoding import exit_beam_searcher, nbest_transcripts, token_ids_to_words
from speechbrain_ee.nnet import EarlyExitConformerEncoder, ExitHeads, MaskedConvFrontEnd
from speechbrain_ee.nnet.aed_model import EarlyExitAED, ExitDecoder, exit_decoders

CLASSES = 9  # 8 tokens (0 unk, 1 BOS, 2 EOS, ...) + blank (8)
BOS, EOS, BLANK = 1, 2, 8


def tiny_model(exit_layers=(1, 2, 3), d_model=16):
    enc = EarlyExitConformerEncoder(MaskedConvFrontEnd(12, (4,)), d_model=d_model, nhead=2, d_ffn=32,
                                    num_layers=max(exit_layers), exit_layers=list(exit_layers),
                                    kernel_size=3, dropout=0.0)
    n = len(exit_layers)
    return EarlyExitAED(enc, ExitHeads(d_model, CLASSES, n),
                        exit_decoders(n, CLASSES, d_model, 2, 32, 2, dropout=0.0),
                        ExitHeads(d_model, CLASSES, n)).eval()


def test_decoder_shapes_per_exit():
    model = tiny_model()
    feats, lens = torch.rand(3, 40, 12), torch.tensor([40, 25, 12])
    tokens_bos = torch.randint(3, 8, (3, 5))
    ctc, seq, out_lens = model.forward_joint(feats, lens, tokens_bos)
    assert len(ctc) == len(seq) == 3
    for c, s in zip(ctc, seq):
        assert c.shape == (3, 20, CLASSES) and s.shape == (3, 5, CLASSES)
        assert torch.allclose(s.exp().sum(-1), torch.ones(3, 5), atol=1e-5)
    assert out_lens.tolist() == [20, 13, 6]
    # decoders are separate modules with their own weights
    assert model.decoders[0] is not model.decoders[1]
    first, second = (list(model.decoders[i].parameters()) for i in (0, 1))
    assert not any(p is q for p in first for q in second)
    assert not torch.equal(first[0], second[0])  # embedding tables


def test_exit_decoder_batch_equals_alone():
    """Target padding and encoder padding change nothing at the real positions."""
    model = tiny_model()
    feats, lens = torch.rand(2, 40, 12), torch.tensor([40, 16])
    tokens = torch.tensor([[1, 3, 4, 5], [1, 6, 0, 0]])
    _, seq, _ = model.forward_joint(feats, lens, tokens)
    _, alone, _ = model.forward_joint(feats[1:, :16], lens[1:], tokens[1:, :2])
    assert torch.allclose(seq[2][1, :2], alone[2][0], atol=1e-5)


def test_decoder_exits_run_only_those_decoders():
    model = tiny_model()
    feats, lens = torch.rand(2, 40, 12), torch.tensor([40, 30])
    tokens = torch.tensor([[1, 3, 4], [1, 5, 0]])
    ctc_all, seq_all, _ = model.forward_joint(feats, lens, tokens)
    calls = []
    for i, decoder in enumerate(model.decoders):
        decoder.register_forward_hook(lambda module, args, out, i=i: calls.append(i))
    ctc, seq, _ = model.forward_joint(feats, lens, tokens, decoder_exits=[2, 0])
    assert calls == [0, 2]
    assert seq[1] is None
    assert torch.allclose(seq[0], seq_all[0]) and torch.allclose(seq[2], seq_all[2])
    assert all(torch.allclose(a, b) for a, b in zip(ctc, ctc_all))  # every CTC head still runs
    with pytest.raises(ValueError, match=r"decoder_exits \[3\] outside the 3 exits"):
        model.forward_joint(feats, lens, tokens, decoder_exits=[3])


def test_incremental_interface_matches_forward():
    model = tiny_model()
    feats, lens = torch.rand(2, 40, 12), torch.tensor([40, 30])
    full, _ = model(feats, lens)
    state = model.start(feats, lens)
    state, lp = model.step(state, 1)
    assert torch.allclose(lp, full[1], atol=1e-5)
    enc_out = model.exit_output(state, 1)
    ctc, seq, _, outs = model.forward_joint(feats, lens, torch.tensor([[1], [1]]), max_exit=1,
                                           return_states=True)
    assert torch.allclose(enc_out, outs[1], atol=1e-5)
    with pytest.raises(ValueError, match="not an exit"):
        model.searcher_modules(5)


def test_mismatched_exit_count_is_rejected():
    enc = EarlyExitConformerEncoder(MaskedConvFrontEnd(12, (4,)), d_model=16, nhead=2, d_ffn=32,
                                    num_layers=2, exit_layers=[1, 2])
    with pytest.raises(ValueError, match="1 decoders for 2 encoder exits"):
        EarlyExitAED(enc, ExitHeads(16, CLASSES, 2), [ExitDecoder(CLASSES, 16, 2, 32, 1)],
                     ExitHeads(16, CLASSES, 2))


class ForcedLinear(torch.nn.Module):
    """Logits that make the decoder say 3, 4, then EOS, then 5 forever."""

    def __init__(self, decoder_calls):
        super().__init__()
        self.w = torch.nn.Linear(1, CLASSES)
        self.calls = decoder_calls

    def forward(self, x):
        step = x.shape[1]  # the searcher feeds the whole prefix (BOS + tokens so far)
        nxt = {1: 3, 2: 4, 3: EOS}.get(step, 5)
        logits = torch.full((*x.shape[:2], CLASSES), -10.0)
        logits[..., nxt] = 10.0
        self.calls.append(step)
        return logits


def test_beam_search_stops_at_eos():
    model = tiny_model()
    calls = []
    forced = ForcedLinear(calls)
    factory = partial(S2STransformerBeamSearcher, bos_index=BOS, eos_index=EOS, beam_size=3,
                      min_decode_ratio=0.0, max_decode_ratio=1.0, using_eos_threshold=False)
    searcher = exit_beam_searcher(factory, model, 2, blank_index=BLANK, eos_index=EOS, ctc_weight=0.0)
    searcher.fc = forced  # attention-only search driven by the forced logits
    enc_out = model.exit_output(model.start(torch.rand(2, 80, 12), torch.tensor([80, 80])), 2)
    hyps, lengths, _, _ = searcher(enc_out, torch.ones(2))
    assert hyps == [[3, 4], [3, 4]]  # EOS ends the hypothesis and is not part of it
    assert max(calls) <= 4 < enc_out.shape[1]  # stopped long before max_decode_ratio * frames


def test_joint_searcher_and_nbest_run():
    model = tiny_model()
    factory = partial(S2STransformerBeamSearcher, bos_index=BOS, eos_index=EOS, beam_size=4,
                      min_decode_ratio=0.0, max_decode_ratio=1.0, using_eos_threshold=False,
                      return_topk=True, topk=3)
    searcher = exit_beam_searcher(factory, model, 0, blank_index=BLANK, eos_index=EOS, ctc_weight=0.4)
    enc_out = model.exit_output(model.start(torch.rand(2, 24, 12), torch.tensor([24, 16])), 0)

    class Tok:
        def get_piece_size(self):
            return 8

        def decode_ids(self, ids):
            return " ".join(str(i) for i in ids)

    nbest = nbest_transcripts(searcher, enc_out, torch.tensor([1.0, 16 / 24]), Tok())
    assert len(nbest) == 2 and all(len(n) == 3 for n in nbest)
    scores = [s for _, s in nbest[0]]
    assert scores == sorted(scores, reverse=True)
    assert all(str(BLANK) not in words for n in nbest for words, _ in n)
    assert token_ids_to_words([3, BLANK, 4], Tok()) == ["3", "4"]
    # the N-best's first entry is the 1-best search's whole hypothesis (the
    # searcher's N-best lengths are relative)
    best = exit_beam_searcher(partial(factory, return_topk=False), model, 0, blank_index=BLANK,
                              eos_index=EOS, ctc_weight=0.4)(enc_out, torch.tensor([1.0, 16 / 24]))[0]
    assert [n[0][0] for n in nbest] == [token_ids_to_words(h, Tok()) for h in best]
    assert any(n[0][0] for n in nbest)
