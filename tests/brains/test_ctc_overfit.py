"""The early-exit CTC model learns a handful of utterances to ~zero error at the top exit."""

import torch

from speechbrain_ee.losses import early_exit_ctc_loss
from speechbrain_ee.nnet import EarlyExitConformerEncoder, EarlyExitCTC, ExitHeads, MaskedConvFrontEnd


def greedy(lp, n, blank):
    ids = lp[:n].argmax(-1).tolist()
    out, prev = [], None
    for i in ids:
        if i != prev and i != blank:
            out.append(i)
        prev = i
    return out


def test_overfit_handful_of_utterances():
    torch.manual_seed(0)
    vocab, blank = 6, 6
    # five "utterances": token sequences rendered as noisy feature patterns
    targets = [[0, 1, 2], [3, 4], [5, 0, 3, 1], [2, 2, 4], [1, 5]]
    prototypes = torch.randn(vocab, 16)
    feats, lens = [], []
    for seq in targets:
        frames = torch.cat([prototypes[t].repeat(8, 1) for t in seq])
        feats.append(frames + 0.1 * torch.randn_like(frames))
        lens.append(frames.shape[0])
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    lens = torch.tensor(lens)
    tgt = torch.nn.utils.rnn.pad_sequence([torch.tensor(t) for t in targets], batch_first=True)
    tgt_lens = torch.tensor([len(t) for t in targets]) / tgt.shape[1]

    enc = EarlyExitConformerEncoder(MaskedConvFrontEnd(16, (8,)), d_model=32, nhead=4, d_ffn=64,
                                    num_layers=4, exit_layers=[2, 4], kernel_size=5, dropout=0.0)
    model = EarlyExitCTC(enc, ExitHeads(32, vocab + 1, 2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        log_probs, out_lens = model(x, lens)
        loss, _ = early_exit_ctc_loss(log_probs, out_lens / log_probs[0].shape[1], tgt, tgt_lens, blank)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        log_probs, out_lens = model(x, lens)
    hyps = [greedy(log_probs[-1][i], int(out_lens[i]), blank) for i in range(len(targets))]
    assert hyps == targets
