"""Degraded copies of a test set: telephone band, additive noise, far field.

    python -m speechbrain_ee.data.degrade --an4 ../shared/data/an4 --output /tmp/an4_degraded

writes, for the AN4 test split and the held-out dev split
(:func:`speechbrain_ee.data.an4.prepare_an4`), one folder of WAVs and one
manifest per condition: ``<output>/<split>/<condition>/<ID>.wav`` and
``<output>/<split>/<condition>.csv`` (``clean.csv`` points at the original
audio). The conditions (:data:`CONDITIONS`):

- ``8k-band``: resampled to 8 kHz and back (the band of a telephone or of
  many embedded microphones);
- ``noise-10dB-white`` and ``noise-10dB-speech``: white noise, or noise
  shaped like the long-term average spectrum of the training speech, at 10 dB
  signal-to-noise ratio (RMS over the whole utterance);
- ``far``: reverberation by a synthetic exponentially decaying impulse
  response, then 20 dB less gain (a distant talker).

Everything is made in code from a seed (no noise or impulse-response
download), per utterance, so a file does not depend on the order or on the
other files. The transforms are SpeechBrain's augmentation lobes
(:class:`~speechbrain.augment.time_domain.Resample`,
:class:`~speechbrain.augment.time_domain.AddNoise`,
:func:`~speechbrain.processing.signal_processing.reverberate`); the training
recipe uses the same lobes (:class:`BandLimit`, ``AddNoise``) through
``recipes/AN4/hparams/conformer_ee_robust.yaml``.
"""

import argparse
import json
import logging
import math
import os
import random
import sys
import tempfile
import time
import zlib

import soundfile
import torch
from speechbrain.augment.time_domain import AddNoise, Resample
from speechbrain.processing.signal_processing import reverberate

from speechbrain_ee.data.audio import load_audio
from speechbrain_ee.data.manifest import (
    DataPreparationError,
    Utterance,
    read_manifest,
    write_manifest,
)

logger = logging.getLogger(__name__)

CONDITIONS = ("clean", "8k-band", "noise-10dB-white", "noise-10dB-speech", "far")
DEFAULT_OUTPUT = os.path.join(tempfile.gettempdir(), "sbee_an4_degraded")
SPECTRUM_FILE = "speech_spectrum.json"
PROVENANCE_FILE = "degrade.json"  # the command that made the sets


class BandLimit(torch.nn.Module):
    """Resamples down to one of ``band_rates`` and back up (SpeechBrain
    :class:`~speechbrain.augment.time_domain.Resample` both ways): removes
    everything above half that rate, as a telephone channel does. The
    length is kept. A training lobe (``Augmenter`` entry) and the
    ``8k-band`` condition.

    Arguments
    ---------
    sample_rate : int
        Rate of the input.
    band_rates : list of int
        Intermediate rates, one drawn per call (with the global RNG, so
        ``seed_everything`` fixes the draw).

    Example
    -------
    >>> t = torch.arange(16000) / 16000
    >>> tones = torch.sin(2 * math.pi * 1000 * t) + torch.sin(2 * math.pi * 6000 * t)
    >>> out = BandLimit(16000, [8000])(tones[None])
    >>> out.shape
    torch.Size([1, 16000])
    >>> spectrum = torch.fft.rfft(out[0]).abs()
    >>> bool(spectrum[6000] < 0.01 * spectrum[1000])  # 6 kHz gone, 1 kHz kept
    True
    """

    def __init__(self, sample_rate=16000, band_rates=(8000,)):
        super().__init__()
        rates = [int(r) for r in band_rates]
        if not rates or any(r <= 0 or r >= sample_rate for r in rates):
            raise ValueError(f"band_rates must be between 0 and sample_rate ({sample_rate}), got {band_rates}")
        self.rates = rates
        self.down = torch.nn.ModuleList(Resample(sample_rate, r) for r in rates)
        self.up = torch.nn.ModuleList(Resample(r, sample_rate) for r in rates)

    def forward(self, waveforms):
        """``waveforms`` ``(batch, time)``, band-limited, same shape."""
        pick = int(torch.randint(len(self.rates), (1,)))
        out = self.up[pick](self.down[pick](waveforms))
        length = waveforms.shape[1]
        if out.shape[1] >= length:
            return out[:, :length]
        return torch.nn.functional.pad(out, (0, length - out.shape[1]))


class ShapedNoise:
    """Noise for SpeechBrain's ``AddNoise(noise_funct=...)``: Gaussian noise
    with the given power spectrum (white when ``power_spectrum`` is None),
    drawn from ``generator`` when one is given (reproducible per utterance).

    Arguments
    ---------
    power_spectrum : sequence of float, optional
        Power per frequency bin from 0 Hz to Nyquist (any number of bins,
        interpolated to the signal's FFT), e.g. :func:`long_term_spectrum`.
    generator : torch.Generator, optional
        Random source (default: the global one).

    Example
    -------
    >>> gen = torch.Generator().manual_seed(0)
    >>> low = ShapedNoise([1.0, 1.0, 0.0, 0.0], gen)(torch.zeros(1, 8000))
    >>> spectrum = torch.fft.rfft(low[0]).abs() ** 2
    >>> bool(spectrum[3000:].sum() < 0.01 * spectrum[:1000].sum())
    True
    """

    def __init__(self, power_spectrum=None, generator=None):
        self.power_spectrum = None
        if power_spectrum is not None:
            power = torch.as_tensor(power_spectrum, dtype=torch.float32)
            if power.ndim != 1 or power.numel() < 2 or not torch.isfinite(power).all() or (power < 0).any():
                raise ValueError("power_spectrum must be at least 2 finite, non-negative values")
            self.power_spectrum = power
        self.generator = generator

    def __call__(self, waveforms):
        white = torch.randn(waveforms.shape, generator=self.generator, dtype=torch.float32)
        if self.power_spectrum is None:
            return white.to(waveforms)
        bins = waveforms.shape[1] // 2 + 1
        gain = torch.nn.functional.interpolate(
            self.power_spectrum.sqrt()[None, None], size=bins, mode="linear", align_corners=True
        )[0, 0]
        spectrum = torch.fft.rfft(white, dim=1) * gain.view(1, -1, *([1] * (white.ndim - 2)))
        return torch.fft.irfft(spectrum, n=waveforms.shape[1], dim=1).to(waveforms)


def long_term_spectrum(paths, sample_rate=16000, n_fft=512):
    """Long-term average power spectrum of the speech in ``paths`` (the mean
    over every STFT frame of every file, Hann window), ``n_fft // 2 + 1`` bins
    from 0 Hz to Nyquist, normalised to a mean of 1.

    Example
    -------
    >>> import numpy, os
    >>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
    >>> soundfile.write(path, numpy.sin(numpy.arange(16000) * 2 * numpy.pi * 500 / 16000), 16000)
    >>> spectrum = long_term_spectrum([path], n_fft=64)
    >>> len(spectrum), int(spectrum.argmax())  # 500 Hz: bin 2 of 250 Hz bins
    (33, 2)
    """
    total, frames = torch.zeros(n_fft // 2 + 1, dtype=torch.float64), 0
    window = torch.hann_window(n_fft)
    for path in paths:
        wav = load_audio(path, sample_rate)
        if wav.shape[0] < n_fft:
            continue
        stft = torch.stft(wav, n_fft, hop_length=n_fft // 2, window=window, return_complex=True)
        total += (stft.abs() ** 2).sum(dim=1).double()
        frames += stft.shape[1]
    if frames == 0:
        raise DataPreparationError(f"no audio of at least {n_fft} samples among {len(paths)} file(s)")
    mean = total / frames
    return (mean / mean.mean()).float()


def exponential_rir(sample_rate=16000, rt60=0.6, direct_to_reverberant_db=0.0, generator=None):
    """Synthetic room impulse response: a unit direct path followed by
    Gaussian noise decaying by 60 dB in ``rt60`` seconds, scaled so the
    direct-to-reverberant energy ratio is ``direct_to_reverberant_db``.

    Example
    -------
    >>> rir = exponential_rir(16000, rt60=0.3, generator=torch.Generator().manual_seed(0))
    >>> rir.shape, float(rir[0])
    (torch.Size([4800]), 1.0)
    >>> round(10 * math.log10(1 / float((rir[1:] ** 2).sum())), 3)  # 0 dB DRR
    0.0
    """
    if not rt60 > 0:
        raise ValueError(f"rt60 must be positive, got {rt60}")
    length = max(2, int(round(rt60 * sample_rate)))
    time_s = torch.arange(1, length, dtype=torch.float64) / sample_rate
    tail = torch.randn(length - 1, generator=generator, dtype=torch.float64) * 10 ** (-3 * time_s / rt60)
    tail *= math.sqrt(10 ** (-direct_to_reverberant_db / 10) / float((tail**2).sum()))
    tail = tail.clamp(-0.99, 0.99)  # the direct path stays the largest sample (alignment in reverberate)
    return torch.cat([torch.ones(1, dtype=torch.float64), tail]).float()


def utterance_generator(seed, condition, utt_id):
    """A torch Generator seeded from ``(seed, condition, utt_id)``: each file
    is reproducible on its own."""
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}:{condition}:{utt_id}".encode()))


def degrade(wav, condition, sample_rate=16000, generator=None, speech_spectrum=None,
            snr_db=10.0, far_gain_db=-20.0, rt60=0.6):
    """One waveform ``(samples,)`` under ``condition`` (:data:`CONDITIONS`).

    Example
    -------
    >>> wav = torch.sin(torch.arange(16000) * 0.3)
    >>> gen = torch.Generator().manual_seed(0)
    >>> noisy = degrade(wav, "noise-10dB-white", generator=gen)
    >>> speech = wav * noisy.dot(wav) / wav.dot(wav)  # AddNoise scales the clean part down
    >>> round(float(20 * torch.log10(speech.norm() / (noisy - speech).norm())))  # SNR in dB
    10
    >>> degrade(wav, "far", generator=gen).abs().max() < 0.2 * wav.abs().max()
    tensor(True)
    """
    if condition == "clean":
        return wav
    batch, lengths = wav[None], torch.ones(1)
    if condition == "8k-band":
        return BandLimit(sample_rate, [8000])(batch)[0]
    if condition in ("noise-10dB-white", "noise-10dB-speech"):
        spectrum = None
        if condition.endswith("speech"):
            if speech_spectrum is None:
                raise ValueError(f"condition {condition!r} needs speech_spectrum (long_term_spectrum)")
            spectrum = speech_spectrum
        noisy = AddNoise(snr_low=snr_db, snr_high=snr_db, noise_funct=ShapedNoise(spectrum, generator))
        return noisy(batch, lengths)[0]
    if condition == "far":
        rir = exponential_rir(sample_rate, rt60, generator=generator)
        return reverberate(batch, rir, rescale_amp="avg")[0] * 10 ** (far_gain_db / 20)
    raise ValueError(f"unknown condition {condition!r}: choose from {list(CONDITIONS)}")


def write_wav(path, wav, sample_rate):
    """Writes ``wav`` as 16-bit PCM (what a recorder gives); a peak above
    full scale is scaled down (logged) rather than clipped. Returns the gain."""
    peak = float(wav.abs().max())
    gain = 1.0 if peak <= 0.999 else 0.999 / peak
    if gain != 1.0:
        logger.info("%s: peak %.3f scaled to full scale", path, peak)
    soundfile.write(path, (wav * gain).numpy(), sample_rate, subtype="PCM_16")
    return gain


def make_degraded_set(csv_path, output_folder, condition, seed=0, sample_rate=16000,
                      speech_spectrum=None):
    """Writes ``<output_folder>/<condition>/<ID>.wav`` for every row of the
    manifest ``csv_path`` and the manifest ``<output_folder>/<condition>.csv``
    (``clean``: the manifest's own audio). Returns the manifest path."""
    rows = read_manifest(csv_path)
    target = os.path.join(output_folder, f"{condition}.csv")
    utterances = []
    folder = os.path.join(output_folder, condition)
    if condition != "clean":
        os.makedirs(folder, exist_ok=True)
    for row in rows:
        if condition == "clean":
            utterances.append(Utterance(row["ID"], row["wav"], row.get("spk_id", ""), row["wrd"]))
            continue
        wav = load_audio(row["wav"], sample_rate)
        out = degrade(wav, condition, sample_rate, utterance_generator(seed, condition, row["ID"]),
                      speech_spectrum)
        path = os.path.join(folder, f"{row['ID']}.wav")
        write_wav(path, out, sample_rate)
        utterances.append(Utterance(row["ID"], path, row.get("spk_id", ""), row["wrd"]))
    write_manifest(utterances, target)
    return target


def spectrum_of_manifest(csv_path, max_files=200, seed=0, sample_rate=16000):
    """:func:`long_term_spectrum` of (a seeded sample of ``max_files`` of) a manifest's audio."""
    paths = [row["wav"] for row in read_manifest(csv_path)]
    if len(paths) > max_files:
        paths = random.Random(seed).sample(paths, max_files)
    return long_term_spectrum(paths, sample_rate)


def main(argv=None):
    """Command line; returns the exit status (2 with a one-line error on bad input)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--an4", help="the AN4 folder (etc/, wav/): degrades its test and dev splits")
    source.add_argument("--csv", action="append", help="manifest(s) to degrade instead (with --spectrum-csv)")
    parser.add_argument("--spectrum-csv", help="manifest whose speech gives the speech-shaped noise "
                                               "(default with --an4: its training split)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help=f"output folder (default {DEFAULT_OUTPUT})")
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    parser.add_argument("--splits", nargs="+", default=["test", "dev"], choices=["train", "dev", "test"],
                        help="AN4 splits to degrade")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-rate", type=int, default=16000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    start = time.time()
    try:
        if args.an4:
            from speechbrain_ee.data.an4 import prepare_an4

            manifests = prepare_an4(args.an4, os.path.join(args.output, "manifests"))
            sources = {split: manifests[split] for split in args.splits}
            spectrum_csv = args.spectrum_csv or manifests["train"]
        else:
            sources = {os.path.splitext(os.path.basename(p))[0]: p for p in args.csv}
            spectrum_csv = args.spectrum_csv
            if "noise-10dB-speech" in args.conditions and not spectrum_csv:
                raise ValueError("noise-10dB-speech needs --spectrum-csv (the speech whose spectrum the noise takes)")
        spectrum = None
        if spectrum_csv and "noise-10dB-speech" in args.conditions:
            spectrum = spectrum_of_manifest(spectrum_csv, seed=args.seed, sample_rate=args.sample_rate)
            os.makedirs(args.output, exist_ok=True)
            with open(os.path.join(args.output, SPECTRUM_FILE), "w") as handle:
                json.dump({"source": os.path.abspath(spectrum_csv), "n_fft": 512,
                           "power": [round(float(p), 6) for p in spectrum]}, handle)
        written = {}
        for split, csv_path in sources.items():
            for condition in args.conditions:
                written[f"{split}/{condition}"] = make_degraded_set(
                    csv_path, os.path.join(args.output, split), condition, args.seed,
                    args.sample_rate, spectrum,
                )
    except (DataPreparationError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    command = "python -m speechbrain_ee.data.degrade " + " ".join(sys.argv[1:] if argv is None else argv)
    with open(os.path.join(args.output, PROVENANCE_FILE), "w") as handle:
        json.dump({"command": command, "seed": args.seed, "conditions": args.conditions, "sets": written,
                   "wall_s": round(time.time() - start, 1)}, handle, indent=2)
    for name, path in written.items():
        print(f"{name}: {path}")
    print(f"done in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
