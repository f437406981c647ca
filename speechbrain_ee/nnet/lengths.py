"""Length and padding helpers shared by the models, the features and the
exit-selection measures (integer lengths, SpeechBrain relative lengths)."""

import torch


def length_mask(lengths, max_len):
    """Boolean mask, True on real frames: shape ``(batch, max_len)``.

    Example
    -------
    >>> length_mask(torch.tensor([1, 3]), 3)
    tensor([[ True, False, False],
            [ True,  True,  True]])
    """
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def fbank_lengths(wav_lens, num_samples, hop_length):
    """Number of real feature frames of each utterance (centred STFT).

    Arguments
    ---------
    wav_lens : torch.Tensor
        Relative lengths (SpeechBrain convention), shape ``(batch,)``.
    num_samples : int
        Padded length of the waveform batch.
    hop_length : int
        Hop size in samples.

    Returns
    -------
    torch.Tensor
        Integer frame counts.

    Example
    -------
    >>> fbank_lengths(torch.tensor([0.5, 1.0]), 32000, 160)
    tensor([101, 201])
    """
    samples = torch.round(wav_lens * num_samples).long()
    return samples // hop_length + 1
