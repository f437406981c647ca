"""The early-exit AED model learns a handful of synthetic utterances: the joint
CTC/attention beam search of the top exit gives them back exactly."""

from functools import partial

import torch
from speechbrain.decoders.seq2seq import S2STransformerBeamSearcher

from speechbrain_ee.aed_decoding import exit_beam_searcher
from speechbrain_ee.losses import early_exit_joint_loss
from speechbrain_ee.nnet import EarlyExitConformerEncoder, ExitHeads, MaskedConvFrontEnd
from speechbrain_ee.nnet.aed_model import EarlyExitAED, exit_decoders

BOS, EOS = 1, 2
VOCAB = 9  # tokens 3..8 are "words"; 0 unk, 1 BOS, 2 EOS
BLANK = VOCAB  # last class


def pad(seqs, value=0):
    return torch.nn.utils.rnn.pad_sequence([torch.as_tensor(s) for s in seqs], batch_first=True,
                                           padding_value=value)


def test_overfit_handful_of_utterances():
    torch.manual_seed(0)
    targets = [[3, 4, 5], [6, 7], [8, 3, 6, 4], [5, 5, 7], [4, 8]]
    prototypes = torch.randn(VOCAB, 16)
    feats, lens = [], []
    for seq in targets:
        frames = torch.cat([prototypes[t].repeat(8, 1) for t in seq])
        feats.append(frames + 0.1 * torch.randn_like(frames))
        lens.append(frames.shape[0])
    x, lens = pad(feats), torch.tensor(lens)
    tokens = pad(targets)
    tokens_lens = torch.tensor([len(t) for t in targets]) / tokens.shape[1]
    tokens_bos = pad([[BOS] + t for t in targets])
    tokens_eos = pad([t + [EOS] for t in targets])
    eos_lens = torch.tensor([len(t) + 1 for t in targets]) / tokens_eos.shape[1]

    d = 32
    enc = EarlyExitConformerEncoder(MaskedConvFrontEnd(16, (8,)), d_model=d, nhead=4, d_ffn=64,
                                    num_layers=2, exit_layers=[1, 2], kernel_size=5, dropout=0.0)
    model = EarlyExitAED(enc, ExitHeads(d, VOCAB + 1, 2), exit_decoders(2, VOCAB + 1, d, 4, 64, 1, 0.0),
                         ExitHeads(d, VOCAB + 1, 2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        ctc, seq, out_lens = model.forward_joint(x, lens, tokens_bos)
        loss, _ = early_exit_joint_loss(ctc, seq, out_lens / ctc[0].shape[1], tokens, tokens_lens,
                                        tokens_eos, eos_lens, BLANK, BOS, label_smoothing=0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    factory = partial(S2STransformerBeamSearcher, bos_index=BOS, eos_index=EOS, beam_size=3,
                      min_decode_ratio=0.0, max_decode_ratio=1.0, using_eos_threshold=False)
    searcher = exit_beam_searcher(factory, model, 1, blank_index=BLANK, eos_index=EOS, ctc_weight=0.3)
    with torch.no_grad():
        enc_out = model.exit_output(model.start(x, lens), 1)
        out_lens = model.start(x, lens).lengths
        hyps = searcher(enc_out, out_lens / enc_out.shape[1])[0]
    assert hyps == targets
