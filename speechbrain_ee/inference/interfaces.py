"""SpeechBrain ``Pretrained`` interface of early-exit models (CTC and
attention encoder-decoder)."""

import logging
import os

import torch
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.data_utils import batch_pad_right

from speechbrain_ee.checks import check_number
from speechbrain_ee.data.audio import AudioError, load_audio, silent_rows
from speechbrain_ee.features import model_inputs
from speechbrain_ee.inference.chunked import route_batch
from speechbrain_ee.inference.decoders import build_text_decoder
from speechbrain_ee.inference.transcription import Transcription
from speechbrain_ee.inference.dynamic import exit_extras, run_dynamic
from speechbrain_ee.selection.calibrate import CALIBRATION_FILE, load_selector
from speechbrain_ee.selection.selectors import ExitSelector, FixedExitSelector, make_selector

logger = logging.getLogger(__name__)


class EarlyExitASR(Pretrained):
    """Early-exit recogniser loaded from an exported model directory
    (``speechbrain_ee.recipe.export_pretrained``)::

        asr = EarlyExitASR.from_hparams(source="pretrained/an4-conformer-ctc-ee",
                                        savedir="tmp/an4-ee")
        asr.transcribe_file("a.wav")                      # default selector
        asr.transcribe_file("a.wav", exit=2)              # fixed exit (0-based)
        asr.transcribe_file("a.wav", selector="entropy", threshold=0.01)

    Without ``exit``/``selector`` the model uses the selector stored in the
    model directory by :mod:`speechbrain_ee.selection.calibrate`
    (``selector.yaml``), or the ``selector`` entry of ``hyperparams.yaml``, or
    else its last exit.

    A CTC model is decoded from its exit posteriors (:class:`CTCTextDecoder`).
    An attention model (``EarlyExitAED``; its hparams define ``searcher``, a
    partial ``S2STransformerBeamSearcher``, with ``eos_index`` and
    ``ctc_weight``) is decoded by the decoder of the exit each utterance
    leaves at (:class:`AttentionTextDecoder`, or with ``aed_decoding:
    rescoring`` :class:`AttentionRescoringDecoder`); its selectors still read
    that exit's CTC posteriors, and the N-best confidence uses that decoder's
    N-best list.

    Arguments
    ---------
    *args, **kwargs
        As :class:`~speechbrain.inference.interfaces.Pretrained`.
    beam_size : int, optional
        CTC models: 0 for greedy CTC, else prefix beam search; default:
        ``beam_size`` of the hparams, else 0. Attention models: the beam of
        the joint search (default: the ``searcher``'s).
    selector : ExitSelector, optional
        Default selector.
    """

    HPARAMS_NEEDED = ["tokenizer", "blank_index", "sample_rate"]
    MODULES_NEEDED = ["model"]

    def __init__(self, *args, beam_size=None, selector=None, aed_decoding=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.decoder = self.build_decoder(beam_size, aed_decoding)
        self.default_selector = selector if selector is not None else getattr(self.hparams, "selector", None)

    @classmethod
    def from_hparams(cls, source, hparams_file="hyperparams.yaml", overrides=None, savedir=None, **kwargs):
        """Loads an exported model (see :meth:`Pretrained.from_hparams`) from
        a local directory, or from a remote source (a HuggingFace id or an
        URL) through SpeechBrain's fetching: its files (:data:`MODEL_FILES`,
        the optional ones when present) are fetched into ``savedir`` first.
        ``pretrained_path`` is set to the folder holding them, and a calibrated
        ``selector.yaml`` there becomes the default selector."""
        source = str(source)
        if os.path.isdir(source):
            folder = source
            if not os.path.isfile(os.path.join(folder, hparams_file)):
                raise FileNotFoundError(f"not a model directory (no {hparams_file}): {source}")
        else:
            folder = fetch_model_files(source, hparams_file, savedir)
        overrides = {"pretrained_path": os.path.abspath(folder), **(overrides or {})}
        asr = super().from_hparams(folder, hparams_file=hparams_file, overrides=overrides, savedir=savedir,
                                   **kwargs)
        calibrated = os.path.join(folder, CALIBRATION_FILE)
        if asr.default_selector is None and os.path.isfile(calibrated):
            asr.default_selector = load_selector(calibrated)
            logger.info("default exit selector from %s: %r", calibrated, asr.default_selector)
        return asr

    def build_decoder(self, beam_size=None, aed_decoding=None):
        """The model's text decoder (:func:`build_text_decoder`: the decoding
        its exported hyperparameters name, as the recipe's test stage did)."""
        return build_text_decoder(self.mods.model, self.hparams, self.device, beam_size, aed_decoding)

    # ------------------------------------------------------------------ pieces
    @property
    def model(self):
        """The early-exit model (``mods.model``)."""
        return self.mods.model

    @property
    def exit_layers(self):
        """Layer of each exit."""
        return list(self.model.exit_layers)

    def encode_inputs(self, wavs, wav_lens):
        """Waveforms (relative lengths) -> model inputs and integer lengths."""
        normalize = self.mods["normalize"] if "normalize" in self.mods else None
        return model_inputs(
            wavs.to(self.device), wav_lens.to(self.device),
            compute_features=getattr(self.hparams, "compute_features", None),
            normalize=normalize,
        )

    def prepare_selector(self, selector):
        """Gives a selector what it needs from the model: a
        :class:`ConfidenceSelector` gets the N-best of the attention decoder
        (attention models) or the CTC vocabulary for its prefix beam search."""
        if hasattr(selector, "bind_vocabulary") and not selector.is_bound:
            if hasattr(self.decoder, "nbest_scores"):
                selector.bind_nbest(self.decoder.nbest_scores)
            else:
                selector.bind_vocabulary(self.decoder.vocab_list(), self.hparams.blank_index)
        return selector

    def resolve_selector(self, exit=None, selector=None, threshold=None, **selector_options):
        """The selector a call asks for: a fixed ``exit`` (0-based index), a
        selector name of :data:`speechbrain_ee.selection.SELECTORS` with its
        ``threshold`` (and options such as ``topk``), a selector object, or
        the default."""
        if exit is not None:
            if selector is not None or threshold is not None:
                raise ValueError("give either exit or selector/threshold, not both")
            self.model.check_exit(exit)
            return FixedExitSelector(exit)
        if isinstance(selector, str):
            return self.prepare_selector(make_selector(selector, threshold, **selector_options))
        if threshold is not None or selector_options:
            raise ValueError("threshold and selector options go with a selector name, e.g. selector='entropy'")
        if selector is None:
            selector = self.default_selector
        if selector is None:
            return FixedExitSelector(len(self.exit_layers) - 1)
        if not isinstance(selector, ExitSelector):
            raise ValueError(f"selector must be a name or an ExitSelector, got {selector!r}")
        return self.prepare_selector(selector)

    # ------------------------------------------------------------------ recognition (exit + depth)
    def recognize_batch(self, wavs, wav_lens=None, exit=None, selector=None, threshold=None,
                        **selector_options):
        """Recognises a padded batch of waveforms at the model's sample rate
        and tells, per utterance, the exit it left at and the layers computed.

        Arguments
        ---------
        wavs : torch.Tensor
            ``(batch, samples)``.
        wav_lens : torch.Tensor, optional
            Relative lengths (default: all 1).
        exit, selector, threshold, **selector_options
            See :meth:`resolve_selector`.

        Returns
        -------
        list of Transcription
        """
        chosen = self.resolve_selector(exit, selector, threshold, **selector_options)
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        routed = route_batch(self, wavs, wav_lens, chosen)  # silence -> "", long input -> in pieces
        if routed is not None:
            return routed
        inputs, lengths = self.encode_inputs(wavs, wav_lens)
        result = run_dynamic(self.model, inputs, lengths, chosen, self.decoder)
        return [
            Transcription(text, exit_index, layers)
            for text, exit_index, layers in zip(result.hypotheses, result.exits, result.layers)
        ]

    @torch.no_grad()
    def recognize_every_exit(self, wavs, wav_lens=None):
        """Transcripts of a padded batch at every exit, the encoder run once
        (what a per-exit WER table needs).

        Returns
        -------
        list of list of str
            ``[exit][utterance]``.
        """
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        inputs, lengths = self.encode_inputs(wavs, wav_lens)
        state = self.model.start(inputs, lengths)
        transcripts = []
        for exit_index in range(len(self.exit_layers)):
            state, log_probs = self.model.step(state, exit_index)
            extras = exit_extras(self.decoder, self.model, state, exit_index)
            transcripts.append(self.decoder(log_probs, state.lengths, **extras))
        for i in [i for i, silent in enumerate(silent_rows(wavs, wav_lens)) if silent]:
            for row in transcripts:  # silence -> "" at every exit, as recognize_batch
                row[i] = ""
        return transcripts

    def load_file(self, path):
        """Mono waveform of ``path`` at the model's rate (clear ``AudioError``)."""
        return load_audio(str(path), self.hparams.sample_rate, getattr(self.hparams, "min_audio_samples", 1))

    def recognize_file(self, path, exit=None, selector=None, threshold=None, **selector_options):
        """Recognises one audio file of any sample rate / channel count.

        Returns
        -------
        Transcription
        """
        wav = self.load_file(path)
        result = self.recognize_batch(wav[None], None, exit, selector, threshold, **selector_options)[0]
        result.path = str(path)
        return result

    def recognize_files(self, paths, batch_size=8, exit=None, selector=None, threshold=None,
                        progress=False, **selector_options):
        """Recognises many files in batches; a file that cannot be read gets
        a :class:`Transcription` with ``error`` set (and a warning) and the
        others go on.

        Returns
        -------
        list of Transcription
            In the order of ``paths``.
        """
        return list(self.iter_recognize_files(
            paths, batch_size, exit, selector, threshold, progress, **selector_options
        ))

    def iter_recognize_files(self, paths, batch_size=8, exit=None, selector=None, threshold=None,
                             progress=False, **selector_options):
        """As :meth:`recognize_files`, yielding each :class:`Transcription`
        (in the order of ``paths``) as soon as its batch is done, so that a
        caller can write results as they come."""
        self.resolve_selector(exit, selector, threshold, **selector_options)  # bad arguments fail first
        check_number("batch_size", batch_size, minimum=1, integer=True)
        paths = [str(p) for p in paths]
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(paths), unit="file")
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            results = [None] * len(chunk)
            good, wavs = [], []
            for i, path in enumerate(chunk):
                try:
                    wavs.append(self.load_file(path))
                    good.append(i)
                except AudioError as err:
                    logger.warning("skipping %s", err)
                    results[i] = Transcription(None, None, None, path, str(err))
            if wavs:
                padded, wav_lens = batch_pad_right(wavs)
                batch = self.recognize_batch(padded, wav_lens, exit, selector, threshold, **selector_options)
                for i, item in zip(good, batch):
                    item.path = chunk[i]
                    results[i] = item
            if bar is not None:
                bar.update(len(chunk))
            yield from results
        if bar is not None:
            bar.close()

    # ------------------------------------------------------------------ EncoderASR-compatible API
    def encode_batch(self, wavs, wav_lens=None, exit=None):
        """Log-posteriors of one exit (default: the last) for a padded batch,
        as :meth:`speechbrain.inference.ASR.EncoderASR.encode_batch`; only the
        layers up to that exit are computed.

        Returns
        -------
        torch.Tensor
            ``(batch, frames, classes)``.
        """
        index = len(self.exit_layers) - 1 if exit is None else exit
        self.model.check_exit(index)
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        inputs, lengths = self.encode_inputs(wavs, wav_lens)
        state = self.model.start(inputs, lengths)
        for i in range(index + 1):
            state, log_probs = self.model.step(state, i)
        return log_probs

    def transcribe_batch(self, wavs, wav_lens=None, **selection):
        """Transcribes a padded batch as
        :meth:`speechbrain.inference.ASR.EncoderASR.transcribe_batch` does.

        Arguments
        ---------
        wavs : torch.Tensor
            ``(batch, samples)`` at the model's sample rate.
        wav_lens : torch.Tensor, optional
            Relative lengths (default: all 1).
        **selection
            ``exit``, ``selector``, ``threshold``... as :meth:`recognize_batch`.

        Returns
        -------
        predicted_words : list of str
            One transcript per utterance.
        predicted_tokens : list of list of int
            The tokenizer's ids of each transcript.
        """
        results = self.recognize_batch(wavs, wav_lens, **selection)
        words = [r.text for r in results]
        return words, [self.hparams.tokenizer.encode_as_ids(w) for w in words]

    def transcribe_file(self, path, **selection):
        """The transcript (str) of one audio file of any sample rate /
        channel count, as :meth:`EncoderASR.transcribe_file`;
        :meth:`recognize_file` also tells the exit and depth."""
        return self.recognize_file(path, **selection).text

    def forward(self, wavs, wav_lens=None):
        """Same as :meth:`encode_batch` (as ``EncoderASR``)."""
        return self.encode_batch(wavs, wav_lens)


#: The files of an exported model directory: (name, required).
MODEL_FILES = (
    ("model.yaml", True), ("model.ckpt", True), ("tokenizer.model", True), ("normalize.ckpt", False),
    ("lm.yaml", False), ("lm.ckpt", False), ("lexicon.txt", False), (CALIBRATION_FILE, False),
    ("checksums.sha256", False),
)


def fetch_model_files(source, hparams_file="hyperparams.yaml", savedir=None):
    """Fetches an exported model's files from a remote ``source`` (a
    HuggingFace id such as ``org/model``, or an URL) into ``savedir``
    (default: ``pretrained_models/<source>``) with SpeechBrain's ``fetch``;
    returns that folder. A missing required file is a ``FileNotFoundError``
    naming it."""
    from speechbrain.utils.fetching import fetch

    folder = savedir or os.path.join("pretrained_models", source.replace("/", "_"))
    for name, required in ((hparams_file, True),) + MODEL_FILES:
        try:
            fetch(name, source, folder)
        except Exception as err:  # HF raises its own errors for absent files
            if required:
                raise FileNotFoundError(f"cannot fetch {name} of the model {source}: {err}") from err
            logger.debug("%s has no %s (%s)", source, name, err)
    return folder
