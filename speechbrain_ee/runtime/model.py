"""A deployment folder (written by :mod:`speechbrain_ee.export.onnx`) run
segment by segment with onnxruntime, stopping at the exit a selector
chooses: the graphs above that exit are never run (nor loaded)."""

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Optional

import onnxruntime
import sentencepiece
import soundfile

from speechbrain_ee.runtime.decoding import ctc_greedy, ctc_prefix_beam
from speechbrain_ee.runtime.features import NumpyFbank
from speechbrain_ee.runtime.selectors import FixedExit, Selector, make_selector

DEPLOYMENT_FILE = "deployment.json"
MANIFEST_FILE = "manifest.json"


class DeploymentError(ValueError):
    """A deployment folder or an audio file that cannot be used; the message names it."""


@dataclass
class Result:
    """One transcribed utterance: ``text``, the ``exit_index`` it left at and
    that exit's ``layer``; ``path`` and ``error`` for files."""

    text: Optional[str]
    exit_index: Optional[int]
    layer: Optional[int]
    path: Optional[str] = None
    error: Optional[str] = None


def _read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as err:
        raise DeploymentError(f"cannot read {path}: {err}") from err


def verify_manifest(folder):
    """Checks the sha256 of every file listed in ``folder/manifest.json``."""
    manifest = _read_json(os.path.join(folder, MANIFEST_FILE))
    for name, entry in manifest.get("files", {}).items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise DeploymentError(f"{path} is listed in {MANIFEST_FILE} but missing")
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != entry.get("sha256"):
            raise DeploymentError(f"{path} does not match its sha256 in {MANIFEST_FILE}")


class EarlyExitRuntime:
    """Early-exit CTC recogniser on onnxruntime, without PyTorch.

    Arguments
    ---------
    folder : str
        The deployment folder.
    threads : int
        Intra-op threads of every onnxruntime session.
    beam_size : int
        0: greedy CTC; else CTC prefix beam search of that width (no LM).
    selector : Selector, optional
        Default selector (else the folder's, else the last exit).
    verify : bool
        Check the sha256 of every file first.
    spin : bool
        Let onnxruntime's worker threads busy-wait between operators (faster
        on an otherwise idle multi-core device; off by default: on a shared
        or battery-powered CPU the spinning threads take cores from others).
    """

    def __init__(self, folder, threads=1, beam_size=0, selector=None, verify=True, spin=False):
        self.folder = str(folder)
        if not os.path.isfile(os.path.join(self.folder, DEPLOYMENT_FILE)):
            raise DeploymentError(f"not a deployment folder (no {DEPLOYMENT_FILE}): {self.folder}")
        if verify:
            verify_manifest(self.folder)
        self.config = _read_json(os.path.join(self.folder, DEPLOYMENT_FILE))
        try:
            self.exit_layers = [int(e) for e in self.config["exit_layers"]]
            self.blank_index = int(self.config["blank_index"])
            self.sample_rate = int(self.config["sample_rate"])
            self.segment_files = list(self.config["segments"])
            self.frontend_file = self.config["frontend"]
        except (KeyError, TypeError, ValueError) as err:
            raise DeploymentError(f"{DEPLOYMENT_FILE} of {self.folder}: bad or missing field {err}") from err
        if len(self.segment_files) != len(self.exit_layers):
            raise DeploymentError(f"{DEPLOYMENT_FILE} of {self.folder}: one segment per exit expected")
        self.threads = int(threads)
        self.spin = bool(spin)
        self.beam_size = int(beam_size)
        self.fbank = NumpyFbank.load(os.path.join(self.folder, "features.npz"))
        self.tokenizer = sentencepiece.SentencePieceProcessor(
            model_file=os.path.join(self.folder, "tokenizer.model"))
        stored = self.config.get("selector")
        if selector is None and stored:
            selector = make_selector(stored["name"], stored["value"])
        self.default_selector = selector if selector is not None else FixedExit(len(self.exit_layers) - 1)
        self._sessions = {}
        #: ``session.run`` calls per graph file (the tests read it)
        self.run_counts = {}

    # ------------------------------------------------------------------ graphs
    def session(self, name):
        """The onnxruntime session of graph ``name``, created on first use."""
        if name not in self._sessions:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
            path = os.path.join(self.folder, name)
            try:
                self._sessions[name] = onnxruntime.InferenceSession(
                    path, options, providers=["CPUExecutionProvider"])
            except Exception as err:  # onnxruntime raises its own exception types
                raise DeploymentError(f"cannot load {path}: {err}") from err
        return self._sessions[name]

    def _run(self, name, inputs):
        self.run_counts[name] = self.run_counts.get(name, 0) + 1
        return self.session(name).run(None, inputs)

    def start(self, wav):
        """Filterbanks and front-end of a waveform: ``(hidden, pos_embs)``."""
        feats = self.fbank(wav)[None]
        return self._run(self.frontend_file, {"fbank": feats})

    def step(self, state, exit_index):
        """Runs segment ``exit_index`` on ``state`` = ``(hidden, pos_embs)``
        (the output of the segment below it, or of :meth:`start`); returns the
        new state and the exit's log-posteriors ``(frames, classes)``."""
        hidden, pos_embs = state
        outputs = self._run(self.segment_files[exit_index], {"hidden": hidden, "pos_embs": pos_embs})
        if len(outputs) == 1:  # the last exit has no hidden output
            return (None, pos_embs), outputs[0][0]
        return (outputs[0], pos_embs), outputs[1][0]

    def decode(self, log_probs):
        """Transcript of one exit's log-posteriors: words separated by one
        space (a trailing word-boundary piece decodes to nothing)."""
        if self.beam_size:
            tokens = ctc_prefix_beam(log_probs, self.blank_index, self.beam_size)
        else:
            tokens = ctc_greedy(log_probs, self.blank_index)
        return " ".join(self.tokenizer.decode_ids(tokens).split())

    @property
    def decoding(self):
        """How transcripts are decoded, in words."""
        return f"CTC prefix beam search, beam {self.beam_size}, no LM" if self.beam_size else "greedy CTC"

    # ------------------------------------------------------------------ transcription
    def resolve_selector(self, exit=None, selector=None, value=None):
        """A fixed ``exit`` (0-based), a selector name with its ``value``, a
        :class:`Selector`, or the default."""
        if exit is not None:
            if selector is not None:
                raise ValueError("give either exit or selector, not both")
            chosen = FixedExit(exit)
        elif isinstance(selector, str):
            chosen = make_selector(selector, value)
        elif selector is None:
            chosen = self.default_selector
        elif isinstance(selector, Selector):
            chosen = selector
        else:
            raise ValueError(f"selector must be a name or a Selector, got {selector!r}")
        chosen.first_exit(self.exit_layers)  # bad exit / budget: clear error now
        return chosen

    def transcribe_waveform(self, wav, exit=None, selector=None, value=None):
        """Transcribes a mono waveform at :attr:`sample_rate`; computes the
        segments up to the chosen exit only."""
        chosen = self.resolve_selector(exit, selector, value)
        first = chosen.first_exit(self.exit_layers)
        state = self.start(wav)
        last = len(self.exit_layers) - 1
        for exit_index in range(last + 1):
            state, log_probs = self.step(state, exit_index)
            if exit_index < first:
                continue
            text = self.decode(log_probs) if (chosen.needs_text or exit_index == last) else None
            if exit_index == last or chosen.stops(exit_index, log_probs, text):
                text = self.decode(log_probs) if text is None else text
                return Result(text, exit_index, self.exit_layers[exit_index])
        raise AssertionError("unreachable: the last exit always stops")

    def all_exits(self, wav):
        """Transcripts of every exit (the whole depth), e.g. to evaluate."""
        state, texts = self.start(wav), []
        for exit_index in range(len(self.exit_layers)):
            state, log_probs = self.step(state, exit_index)
            texts.append(self.decode(log_probs))
        return texts

    def load_audio(self, path):
        """Mono float32 waveform of ``path`` (clear error on a bad file or
        another sample rate)."""
        try:
            data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, OSError...
            raise DeploymentError(f"cannot read audio file {path}: {err}") from err
        if data.shape[0] == 0:
            raise DeploymentError(f"empty audio file (0 samples): {path}")
        if rate != self.sample_rate:
            raise DeploymentError(
                f"audio file {path} is at {rate} Hz: the model takes {self.sample_rate} Hz (resample it first)"
            )
        return data.mean(axis=1)

    def recognize_file(self, path, exit=None, selector=None, value=None):
        """Recognises one audio file; returns a :class:`Result` (text, exit, depth)."""
        result = self.transcribe_waveform(self.load_audio(path), exit, selector, value)
        result.path = str(path)
        return result

    def transcribe_file(self, path, exit=None, selector=None, value=None):
        """The transcript (str) of one audio file, as ``EarlyExitASR.transcribe_file``."""
        return self.recognize_file(path, exit, selector, value).text
