"""From waveforms to what an early-exit model takes, with integer lengths.

Fbank-based models (Conformer) take normalised filterbanks and their real
frame counts; waveform models (wav2vec2) take the waveforms and their real
sample counts. The brains, the inference interface and the benchmarks all go
through :func:`model_inputs`, so the length bookkeeping exists once.
"""

import torch

from speechbrain_ee.nnet.lengths import fbank_lengths


def model_inputs(wavs, wav_lens, compute_features=None, normalize=None, feature_augment=None):
    """Returns ``(inputs, lengths)`` for an early-exit model.

    Arguments
    ---------
    wavs : torch.Tensor
        Waveforms, (batch, samples).
    wav_lens : torch.Tensor
        Relative lengths.
    compute_features : callable, optional
        SpeechBrain ``Fbank``; None for waveform models.
    normalize : callable, optional
        SpeechBrain ``InputNormalization`` (called with relative lengths).
    feature_augment : callable, optional
        Training-time feature augmentation (``Augmenter``), applied after
        normalisation; when it adds utterances (``concat_original``,
        ``repeat_augment``) the lengths follow, and the caller replicates the
        labels with its ``replicate_labels``.

    Returns
    -------
    inputs : torch.Tensor
        Features (batch, frames, n_feats) or the waveforms.
    lengths : torch.Tensor
        Real frame (or sample) counts, integers.

    Example
    -------
    >>> from speechbrain.lobes.features import Fbank
    >>> feats, lens = model_inputs(torch.rand(2, 16000), torch.tensor([1.0, 0.5]), Fbank())
    >>> feats.shape, lens.tolist()
    (torch.Size([2, 101, 40]), [101, 51])
    """
    if compute_features is None:
        return wavs, torch.round(wav_lens * wavs.shape[1]).long()
    feats = compute_features(wavs)
    if normalize is not None:
        feats = normalize(feats, wav_lens)
    if feature_augment is not None:  # may add utterances (concat_original): lengths follow
        feats, wav_lens = feature_augment(feats, wav_lens)
    hop = compute_features.compute_STFT.hop_length
    lengths = fbank_lengths(wav_lens, wavs.shape[1], hop).clamp(max=feats.shape[1])
    return feats, lengths
