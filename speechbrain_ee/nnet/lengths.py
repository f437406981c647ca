"""Sequence lengths and padding, shared by the models, the features and the
exit-selection measures: SpeechBrain's relative lengths (floating point in
[0, 1], the padded length being 1) and integer counts of real frames/samples."""

import numbers

import torch


def as_counts(lengths, max_len):
    """Integer counts of real positions and whether ``lengths`` were relative.

    Arguments
    ---------
    lengths : torch.Tensor
        Relative lengths (floating point, each in [0, 1]: SpeechBrain's
        convention) or integer counts (each at most ``max_len``).
    max_len : int
        The padded length.

    Returns
    -------
    counts : torch.Tensor
        Integer counts (long).
    relative : bool
        Whether ``lengths`` were relative.

    Example
    -------
    >>> as_counts(torch.tensor([1.0, 0.5]), 40)
    (tensor([40, 20]), True)
    >>> as_counts(torch.tensor([40, 21]), 40)
    (tensor([40, 21]), False)
    >>> as_counts(torch.tensor([40.0, 21.0]), 40)
    Traceback (most recent call last):
    ...
    ValueError: lengths must be relative (floating point in [0, 1], SpeechBrain's convention) or integer counts; got floating point values up to 40.0
    """
    lengths = torch.as_tensor(lengths)
    if lengths.is_floating_point():
        if lengths.numel() and (bool((lengths < 0).any()) or float(lengths.max()) > 1.0 + 1e-6):
            raise ValueError(
                "lengths must be relative (floating point in [0, 1], SpeechBrain's convention) or "
                f"integer counts; got floating point values up to {float(lengths.max())}"
            )
        return torch.round(lengths * max_len).long().clamp(max=max_len), True
    if lengths.numel() and (bool((lengths < 0).any()) or int(lengths.max()) > max_len):
        raise ValueError(f"integer lengths must be in 0..{max_len} (the padded length), got {lengths.tolist()}")
    return lengths.long(), False


def in_convention(counts, max_len, relative):
    """``counts`` back in the caller's convention: relative to ``max_len``
    when ``relative``, else unchanged.

    Example
    -------
    >>> in_convention(torch.tensor([10, 5]), 10, True)
    tensor([1.0000, 0.5000])
    """
    return counts.float() / max_len if relative else counts


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


def check_exit_layers(exit_layers, num_layers=None, field="exit_layers", where=""):
    """``exit_layers`` as a list of int, checked: whole numbers (``2.5`` is an
    error, not layer 2), strictly increasing, within ``1..num_layers``.

    Arguments
    ---------
    exit_layers : sequence
        The value from the yaml / a constructor.
    num_layers : int, optional
        Layers of the encoder (upper bound).
    field : str
        Name used in the error.
    where : str
        Appended to the range error (e.g. the pretrained model's name).

    Example
    -------
    >>> check_exit_layers([2, 4], 4)
    [2, 4]
    >>> check_exit_layers([2.5, 6], 12)
    Traceback (most recent call last):
    ...
    ValueError: exit_layers: layers must be whole numbers, got [2.5, 6]
    """
    if isinstance(exit_layers, (str, bytes)) or not hasattr(exit_layers, "__iter__"):
        raise ValueError(f"{field}: expected a list of layer numbers, got {exit_layers!r}")
    exit_layers = list(exit_layers)
    if any(isinstance(e, bool) or not isinstance(e, numbers.Integral) for e in exit_layers):
        raise ValueError(f"{field}: layers must be whole numbers, got {exit_layers}")
    exit_layers = [int(e) for e in exit_layers]
    if not exit_layers or sorted(set(exit_layers)) != exit_layers:
        raise ValueError(f"{field} must be strictly increasing, got {exit_layers}")
    if exit_layers[0] < 1 or (num_layers is not None and exit_layers[-1] > num_layers):
        raise ValueError(f"{field} {exit_layers} outside 1..{num_layers}{where}")
    return exit_layers
