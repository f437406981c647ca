"""The flags every ``sbee`` command shares (same name, same meaning, same
default everywhere), argument types that reject nonsense when the command
line is read, and the model those flags load.

Conventions
-----------
``--model DIR``
    An exported model directory.
``--csv FILE``
    A manifest (``ID,duration,wav,spk_id,wrd``; ``transcribe`` needs only ``wav``).
``--beam-size N``
    0: greedy CTC; N > 0: beam of N; not given: the model's exported decoding.
``--output FILE``
    Always a file (per-utterance results, written as they come);
    ``--output-dir DIR`` is always a folder.
``--json-out FILE``
    The run's summary JSON (checked writable before the work, written at the end).
``--batch-size``, ``--threads``, ``--device``
    Utterances per batch, torch threads, torch device.
``--debug``
    The traceback of an error instead of one line (recipe commands, whose
    ``--debug`` is SpeechBrain's debug run, take ``--traceback``).
"""

import argparse
import math
import os


def _number(text, kind, low=None, high=None):
    """``kind(text)``, finite and within ``[low, high]``, else an ``ArgumentTypeError``."""
    what = "an integer" if kind is int else "a number"
    bound = ""
    if low is not None and high is not None:
        bound = f" in [{low:g}, {high:g}]"
    elif low is not None:
        bound = f" >= {low:g}"
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be {what}{bound}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number{bound}, got {text!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"must be {what}{bound}, got {text!r}")
    return value


def positive_int(text):
    """Argument type: an integer >= 1."""
    return _number(text, int, low=1)


def non_negative_int(text):
    """Argument type: an integer >= 0."""
    return _number(text, int, low=0)


def finite_float(text):
    """Argument type: a finite number (no nan, no inf)."""
    return _number(text, float)


def non_negative_float(text):
    """Argument type: a finite number >= 0.

    Example
    -------
    >>> non_negative_float("0.3")
    0.3
    >>> non_negative_float("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a finite number >= 0, got 'nan'
    """
    return _number(text, float, low=0.0)


def unit_interval(text):
    """Argument type: a number in [0, 1]."""
    return _number(text, float, low=0.0, high=1.0)


# ---------------------------------------------------------------------- shared flags
def add_model_argument(parser, required=True):
    """``--model DIR``."""
    parser.add_argument("--model", required=required, metavar="DIR", help="exported model directory")


def add_csv_argument(parser, required=True, help="manifest (ID,duration,wav,spk_id,wrd)"):
    """``--csv FILE``."""
    parser.add_argument("--csv", required=required, metavar="FILE", help=help)


def add_decoding_arguments(parser):
    """``--beam-size``, ``--lm-weight``, ``--oov-penalty``, ``--ctc-weight``
    and ``--decoding``: each replaces the model's exported value (none given:
    the model decodes as exported)."""
    from speechbrain_ee.inference.decoders import AED_DECODINGS

    group = parser.add_argument_group("decoding (default: as the model was exported)")
    group.add_argument("--beam-size", type=non_negative_int, default=None, metavar="N",
                       help="0: greedy CTC; N: beam search of N (default: the model's)")
    group.add_argument("--lm-weight", type=non_negative_float, default=None,
                       help="weight of the model's LM (0: no LM)")
    group.add_argument("--oov-penalty", type=non_negative_float, default=None,
                       help="beam search: penalty per N-best word outside the model's lexicon (0: none)")
    group.add_argument("--ctc-weight", type=unit_interval, default=None,
                       help="attention models: CTC weight of the joint search or of the rescoring")
    group.add_argument("--decoding", choices=AED_DECODINGS, default=None,
                       help="attention models: joint CTC/attention search or attention rescoring "
                            "of the CTC prefix beam")


def add_run_arguments(parser, batch_size=16):
    """``--batch-size``, ``--threads``, ``--device``, ``--savedir``."""
    group = parser.add_argument_group("run")
    group.add_argument("--batch-size", type=positive_int, default=batch_size, metavar="N",
                       help="utterances per batch (default: %(default)s)")
    group.add_argument("--threads", type=positive_int, default=None, metavar="N",
                       help="torch threads (default: torch's)")
    group.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    group.add_argument("--savedir", default=None, metavar="DIR",
                       help="where SpeechBrain links the model files (default: none, read in place)")


def add_output_argument(parser, help):
    """``--output FILE`` (a file, always)."""
    parser.add_argument("--output", default=None, metavar="FILE", help=help)


def add_json_out_argument(parser, help="write the summary JSON here"):
    """``--json-out FILE``."""
    parser.add_argument("--json-out", default=None, metavar="FILE", help=help)


def is_attention_model(model_dir):
    """Whether the exported model in ``model_dir`` is an attention
    encoder-decoder (its ``hyperparams.yaml`` defines a ``test_search``)."""
    path = os.path.join(model_dir, "hyperparams.yaml")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"not a model directory (no hyperparams.yaml): {model_dir}")
    with open(path) as handle:
        return "\ntest_search:" in "\n" + handle.read()


#: The exported hyperparameter holding an attention model's decoding CTC weight.
DECODING_CTC_WEIGHT_KEY = "ctc_weight_decode"


def decoding_overrides(model_dir, lm_weight=None, oov_penalty=None, ctc_weight=None, aed_decoding=None):
    """Hyperparameter overrides replacing the exported decoding weights (None:
    keep the exported one); flags the model cannot use are errors."""
    from speechbrain_ee.recipe import rescoring_overrides

    attention = is_attention_model(model_dir)
    if not attention and (ctc_weight is not None or aed_decoding is not None):
        raise ValueError("--ctc-weight and --decoding apply to attention models (EarlyExitAED) only")
    overrides = rescoring_overrides(model_dir, lm_weight, oov_penalty)
    if ctc_weight is not None:
        overrides[DECODING_CTC_WEIGHT_KEY] = float(ctc_weight)
    return overrides


def load_recognizer(args):
    """The :class:`~speechbrain_ee.inference.EarlyExitASR` of ``args.model``
    with the decoding flags of :func:`add_decoding_arguments` (those given
    replace the exported values) and :func:`add_run_arguments`."""
    import torch

    from speechbrain_ee.inference.interfaces import EarlyExitASR

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = decoding_overrides(args.model, getattr(args, "lm_weight", None), getattr(args, "oov_penalty", None),
                                   getattr(args, "ctc_weight", None), getattr(args, "decoding", None))
    return EarlyExitASR.from_hparams(
        args.model, savedir=args.savedir, overrides=overrides, run_opts={"device": args.device},
        beam_size=getattr(args, "beam_size", None), aed_decoding=getattr(args, "decoding", None),
    )
