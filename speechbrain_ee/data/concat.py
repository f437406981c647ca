"""Training on joined utterances: for long recordings cut at pauses.

Long audio is decoded in segments cut at pauses
(:mod:`speechbrain_ee.inference.chunked`); a segment often holds the end of
one sentence and the start of the next, which a model trained on single
short utterances (with their leading and trailing silence) has never seen.
:class:`ConcatUtterances` joins, with probability ``prob``, an utterance of
the batch with another one of the same batch after a short pause, and joins
their token sequences the same way, so the model learns sentence boundaries
inside its input.
"""

import torch

from speechbrain_ee.checks import check_number


class ConcatUtterances(torch.nn.Module):
    """Joins utterance pairs of a training batch (waveforms and labels).

    Row ``i`` is, with probability ``prob``, replaced by utterance ``i``,
    a pause of ``pause_seconds`` (uniform in the range) of silence, then
    utterance ``j`` (another row drawn at random); the batch keeps its size
    and every original utterance also stays where it is unless its row was
    joined. Call it on the waveforms, then :meth:`join_labels` on the
    targets of the same batch (the pairing is kept in between).

    SentencePiece token sequences join by concatenation (every word starts
    with the word-boundary piece); give ``separator_index`` for token sets
    with an explicit separator between words.

    Arguments
    ---------
    prob : float
        Probability that a row is joined with another one.
    pause_seconds : tuple of float
        Range of the silence between the two utterances.
    sample_rate : int
        Of the waveforms.
    separator_index : int, optional
        Token put between the two token sequences.

    Example
    -------
    >>> concat = ConcatUtterances(prob=1.0, pause_seconds=(0.0, 0.0))
    >>> wavs = torch.tensor([[1., 1., 0.], [2., 2., 2.]])
    >>> joined, lens = concat(wavs, torch.tensor([2 / 3, 1.0]))
    >>> joined.tolist(), lens.tolist()
    ([[1.0, 1.0, 2.0, 2.0, 2.0], [2.0, 2.0, 2.0, 1.0, 1.0]], [1.0, 1.0])
    >>> tokens, token_lens = concat.join_labels(torch.tensor([[5, 6], [7, 0]]), torch.tensor([1.0, 0.5]))
    >>> tokens.tolist(), token_lens.tolist()
    ([[5, 6, 7], [7, 5, 6]], [1.0, 1.0])
    """

    def __init__(self, prob=0.3, pause_seconds=(0.1, 0.6), sample_rate=16000, separator_index=None):
        super().__init__()
        check_number("concat prob", prob, minimum=0, maximum=1)
        low, high = (float(v) for v in pause_seconds)
        if not 0.0 <= low <= high:
            raise ValueError(f"concat pause_seconds must be 0 <= low <= high, got {pause_seconds!r}")
        self.prob, self.pause = float(prob), (low, high)
        self.sample_rate = sample_rate
        self.separator_index = separator_index
        self.pairs = []

    def forward(self, wavs, lengths):
        """Joined waveforms (batch, new_time) and their relative lengths."""
        batch, max_len = wavs.shape[0], wavs.shape[1]
        counts = torch.round(lengths * max_len).long().tolist()
        self.pairs = []
        if batch < 2 or self.prob == 0.0:
            return wavs, lengths
        rows = []
        for i in range(batch):
            if torch.rand(()) < self.prob:
                j = int(torch.randint(batch - 1, ()))
                j += j >= i
                pause = int(self.sample_rate * (self.pause[0] + (self.pause[1] - self.pause[0]) * float(torch.rand(()))))
                rows.append(torch.cat([wavs[i, :counts[i]], wavs.new_zeros(pause), wavs[j, :counts[j]]]))
                self.pairs.append((i, j))
            else:
                rows.append(wavs[i, :counts[i]])
        if not self.pairs:
            return wavs, lengths
        return padded(rows)

    def join_labels(self, tokens, token_lens):
        """The targets of the batch joined as the last :meth:`forward` joined
        the waveforms: ``(tokens, relative lengths)``."""
        if not self.pairs:
            return tokens, token_lens
        counts = torch.round(token_lens * tokens.shape[1]).long().tolist()
        rows = [tokens[i, :counts[i]] for i in range(tokens.shape[0])]
        separator = [] if self.separator_index is None else [tokens.new_tensor([self.separator_index])]
        for i, j in self.pairs:
            rows[i] = torch.cat([tokens[i, :counts[i]], *separator, tokens[j, :counts[j]]])
        return padded(rows)


def padded(rows):
    """Rows of different lengths as one padded tensor and relative lengths."""
    joined = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
    counts = torch.tensor([len(row) for row in rows], dtype=torch.float, device=joined.device)
    return joined, counts / joined.shape[1]
