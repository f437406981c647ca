"""Warm start: initialise a model's encoder (and its per-exit CTC heads) from
a trained early-exit model.

The AN4 Conformer-AED uses the encoder architecture of the Conformer-CTC
early-exit model, so its encoder (front-end, layers, exit norms) and its
per-exit CTC heads can start from a trained CTC model instead of from
scratch; the same call fine-tunes a shipped model on other data or with
other augmentation (recipes: ``init_from: <model dir>``).

Matching rules (anything else is an error naming the key):

* encoder tensors are copied by name (front-end, input projection, every
  layer both models have); exit ``LayerNorm``s and CTC heads go by the
  *layer* of the exit, so a single-exit [12] model starts from the exit at
  layer 12 of a 6-exit model;
* CTC head rows are matched by token: for each class of the new model, the
  row of the same SentencePiece piece in the source model (the blank, last
  class in both, to the blank); classes the source does not have (e.g.
  BOS/EOS of an AED vocabulary) keep their initial values;
* tensors whose shapes differ (another ``d_model``) fail: a warm start that
  silently leaves the encoder at random is not one.
"""

import logging
import os
from dataclasses import dataclass, field

import torch

from speechbrain_ee.checkpoints import CHECKSUM_FILE, derived_buffers, verify_export_files

logger = logging.getLogger(__name__)

PARTS = ("encoder", "ctc_heads", "normalize")
NORMALIZE_FILES = ("normalize.ckpt", "normalizer.ckpt")


@dataclass
class WarmStartReport:
    """What :func:`warm_start` copied.

    Attributes
    ----------
    source : str
        The model directory read.
    copied : list of str
        State-dict keys of the model that now hold source values.
    kept : list of str
        Keys of the chosen parts left at their initial values (no source
        counterpart: a deeper layer, an exit the source lacks).
    matched_classes : int
        Output classes of the CTC heads filled from a source row (blank included).
    unmatched_pieces : list of str
        Pieces of the new vocabulary the source does not have.
    normalize : bool
        Whether the input statistics were copied.
    """

    source: str
    copied: list = field(default_factory=list)
    kept: list = field(default_factory=list)
    matched_classes: int = 0
    unmatched_pieces: list = field(default_factory=list)
    normalize: bool = False

    def summary(self):
        """One line for the log."""
        return (f"warm start from {self.source}: {len(self.copied)} tensors copied, {len(self.kept)} kept "
                f"at init; CTC classes matched {self.matched_classes}"
                + (f" (new: {' '.join(self.unmatched_pieces)})" if self.unmatched_pieces else "")
                + ("; input statistics copied" if self.normalize else ""))


def source_checkpoint(source):
    """``<source>/model.ckpt``, or a one-line error naming ``init_from``."""
    path = os.path.join(os.path.abspath(source), "model.ckpt") if isinstance(source, str) else None
    if path is None or not os.path.isfile(path):
        raise FileNotFoundError(f"init_from: no model.ckpt in {source} (an exported model or a checkpoint directory)")
    return path


def check_parts(parts):
    """Raises naming ``init_parts`` unless it is a non-empty list of :data:`PARTS`."""
    if not isinstance(parts, (list, tuple)) or not parts:
        raise ValueError(f"init_parts must be a non-empty list of {list(PARTS)}, got {parts!r}")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"init_parts: unknown part(s) {unknown}; choose from {list(PARTS)}")


def load_source(source, source_tokenizer=None, source_exit_layers=None):
    """The state dict, exit layers and tokenizer of a trained model.

    Arguments
    ---------
    source : str
        An exported model directory (``hyperparams.yaml``, ``model.ckpt``,
        ``tokenizer.model``: what ``sbee export`` and the recipes write;
        its files are verified against ``checksums.sha256``) or a
        SpeechBrain checkpoint directory (``CKPT+...`` with ``model.ckpt``).
    source_tokenizer : str, optional
        The source's SentencePiece file (default:
        :func:`source_tokenizer_file`; needed only to copy CTC heads
        between vocabularies that differ).
    source_exit_layers : list of int, optional
        The source's exit layers (default: read from an exported directory;
        for a checkpoint directory, the number of exit norms in the file
        spread as the layers of the model being initialised, see
        :func:`warm_start`).

    Returns
    -------
    dict
        ``state`` (tensors), ``exit_layers`` (list or None),
        ``tokenizer`` (SentencePieceProcessor or None), ``folder``.
    """
    import sentencepiece

    path = source_checkpoint(source)
    folder = os.path.dirname(path)
    if os.path.isfile(os.path.join(folder, CHECKSUM_FILE)):
        verify_export_files(path)
    state = torch.load(path, map_location="cpu")
    if not isinstance(state, dict) or not any(key.startswith("encoder.") for key in state):
        raise ValueError(f"init_from: {path} holds no early-exit encoder (no 'encoder.*' tensors)")
    exit_layers = list(source_exit_layers) if source_exit_layers else exported_exit_layers(folder)
    tokenizer_file = check_source_tokenizer(source_tokenizer) or source_tokenizer_file(folder)
    tokenizer = None
    if tokenizer_file:
        tokenizer = sentencepiece.SentencePieceProcessor(model_file=tokenizer_file)
    return {"state": state, "exit_layers": exit_layers, "tokenizer": tokenizer, "folder": folder}


def check_source_tokenizer(path):
    """``path`` (``init_tokenizer``) when it is None or a file, else a
    one-line error naming ``init_tokenizer``."""
    if path and not os.path.isfile(path):
        raise FileNotFoundError(f"init_tokenizer: source tokenizer {path} not found")
    return path


def source_tokenizer_file(folder):
    """The SentencePiece file of a source model folder: its
    ``tokenizer.model`` (an exported model), else, for a recipe's
    checkpoint (``<save>/CKPT+...``), the one ``*.model`` of
    ``<save>/tokenizer``; None when neither exists.

    Example
    -------
    >>> import tempfile
    >>> save = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(save, "CKPT+1")); os.makedirs(os.path.join(save, "tokenizer"))
    >>> source_tokenizer_file(os.path.join(save, "CKPT+1")) is None
    True
    >>> open(os.path.join(save, "tokenizer", "29_char.model"), "w").close()
    >>> os.path.basename(source_tokenizer_file(os.path.join(save, "CKPT+1")))
    '29_char.model'
    """
    exported = os.path.join(folder, "tokenizer.model")
    if os.path.isfile(exported):
        return exported
    recipe_folder = os.path.join(os.path.dirname(os.path.abspath(folder)), "tokenizer")
    models = sorted(name for name in os.listdir(recipe_folder) if name.endswith(".model")) \
        if os.path.isdir(recipe_folder) else []
    if len(models) > 1:
        raise ValueError(f"init_from: {recipe_folder} holds several tokenizers ({', '.join(models)}); "
                         "name the source's with init_tokenizer")
    return os.path.join(recipe_folder, models[0]) if models else None


def exported_exit_layers(folder):
    """The ``exit_layers`` an exported directory's ``hyperparams.yaml``
    builds its model with (None without that file)."""
    path = os.path.join(folder, "hyperparams.yaml")
    if not os.path.isfile(path):
        return None
    import yaml

    with open(path) as handle:
        for line in handle:
            key, _, value = line.strip().partition(":")
            if key == "exit_layers":
                layers = yaml.safe_load(value)
                if isinstance(layers, list) and all(isinstance(v, int) for v in layers):
                    return layers
    raise ValueError(f"init_from: {path} names no exit_layers list")


def _exit_count(state, prefix):
    indices = {int(key[len(prefix):].split(".")[0]) for key in state if key.startswith(prefix)}
    return max(indices) + 1 if indices else 0


def class_map(target_tokenizer, source_tokenizer, target_classes, source_classes):
    """``{target class: source class}`` by SentencePiece piece, blank (the
    last class of each) to blank, and the target pieces without a source.

    Example
    -------
    >>> class Pieces:
    ...     def __init__(self, pieces): self.pieces = pieces
    ...     def get_piece_size(self): return len(self.pieces)
    ...     def id_to_piece(self, i): return self.pieces[i]
    ...     def piece_to_id(self, p): return self.pieces.index(p) if p in self.pieces else 0
    >>> src, tgt = Pieces(["<unk>", "A", "B"]), Pieces(["<unk>", "<s>", "</s>", "B", "A"])
    >>> class_map(tgt, src, 6, 4)
    ({0: 0, 3: 2, 4: 1, 5: 3}, ['<s>', '</s>'])
    """
    if target_tokenizer is None or source_tokenizer is None:
        if target_classes != source_classes:
            raise ValueError(f"init_from: the CTC heads have {source_classes} classes in the source and "
                             f"{target_classes} here; give both tokenizers to match them by piece")
        return {c: c for c in range(target_classes)}, []
    for name, tok, classes in (("source", source_tokenizer, source_classes),
                               ("model", target_tokenizer, target_classes)):
        if tok.get_piece_size() + 1 != classes:
            raise ValueError(f"init_from: the {name} tokenizer has {tok.get_piece_size()} pieces but its "
                             f"CTC heads {classes} classes (pieces + blank expected)")
    mapping, missing = {target_classes - 1: source_classes - 1}, []
    for t in range(target_tokenizer.get_piece_size()):
        piece = target_tokenizer.id_to_piece(t)
        s = source_tokenizer.piece_to_id(piece)
        if source_tokenizer.id_to_piece(s) == piece:
            mapping[t] = s
        else:
            missing.append(piece)
    return dict(sorted(mapping.items())), missing


def warm_start(model, source, parts=("encoder", "ctc_heads", "normalize"), normalize=None,
               tokenizer=None, source_tokenizer=None, source_exit_layers=None):
    """Copies the encoder (and per-exit CTC heads, input statistics) of a
    trained early-exit model into ``model``, in place.

    Arguments
    ---------
    model : EarlyExitCTC or EarlyExitAED
        The model to initialise (not wrapped in DDP).
    source : str
        Exported model directory or checkpoint directory (:func:`load_source`).
    parts : sequence of str
        Any of ``encoder``, ``ctc_heads``, ``normalize``.
    normalize : InputNormalization, optional
        The model's input normalisation (for ``normalize``).
    tokenizer : SentencePieceProcessor, optional
        The model's tokenizer (CTC head rows are matched by piece).
    source_tokenizer, source_exit_layers
        See :func:`load_source`.

    Returns
    -------
    WarmStartReport

    """
    check_parts(parts)
    src = load_source(source, source_tokenizer, source_exit_layers)
    state, report = src["state"], WarmStartReport(source=src["folder"])
    target = model.state_dict()
    derived = set(derived_buffers(model))
    target_layers = list(model.exit_layers)
    source_layers = src["exit_layers"]
    if source_layers is None:  # a checkpoint directory: exits as the model's if the count agrees
        count = _exit_count(state, "encoder.exit_norms.")
        if count != len(target_layers):
            raise ValueError(f"init_from: {source} has {count} exits, this model {len(target_layers)}: "
                             "give source_exit_layers (or an exported model directory)")
        source_layers = target_layers
    exit_of_layer = {layer: i for i, layer in enumerate(source_layers)}
    updates = {}

    def take(key, source_key, rows=None):
        value = state[source_key]
        if rows is None and value.shape != target[key].shape:
            raise ValueError(f"init_from: {source_key} is {tuple(value.shape)} in {source} but "
                             f"{key} is {tuple(target[key].shape)} here (another architecture?)")
        if rows is not None:
            merged = target[key].clone()
            if value.shape[1:] != merged.shape[1:]:
                raise ValueError(f"init_from: {source_key} is {tuple(value.shape)} in {source} but "
                                 f"{key} is {tuple(merged.shape)} here (another d_model?)")
            for t, s in rows.items():
                merged[t] = value[s].to(merged.dtype)
            value = merged
        updates[key] = value.to(target[key].dtype)
        report.copied.append(key)

    rows = None
    if "ctc_heads" in parts:
        head_keys = [k for k in target if k.startswith("heads.linears.")]
        if head_keys:
            source_classes = state.get("heads.linears.0.weight")
            if source_classes is None:
                raise ValueError(f"init_from: {source} has no CTC heads (heads.linears.*)")
            rows, report.unmatched_pieces = class_map(
                tokenizer, src["tokenizer"], target["heads.linears.0.weight"].shape[0], source_classes.shape[0])
            report.matched_classes = len(rows)
    shared_source = _exit_count(state, "heads.linears.") == 1 and len(source_layers) > 1
    shared_target = len(target_layers) > 1 and _exit_count(target, "heads.linears.") == 1
    for key in target:
        if key in derived:
            continue
        if "encoder" in parts and key.startswith("encoder."):
            source_key = key
            if key.startswith("encoder.exit_norms."):
                index, rest = key[len("encoder.exit_norms."):].split(".", 1)
                j = exit_of_layer.get(target_layers[int(index)])
                source_key = None if j is None else f"encoder.exit_norms.{j}.{rest}"
            if source_key in state:
                take(key, source_key)
            else:
                report.kept.append(key)
        elif "ctc_heads" in parts and key.startswith("heads.linears."):
            index, rest = key[len("heads.linears."):].split(".", 1)
            j = 0 if shared_source else (None if shared_target else exit_of_layer.get(target_layers[int(index)]))
            source_key = None if j is None else f"heads.linears.{j}.{rest}"
            if source_key in state:
                take(key, source_key, rows)
            else:
                report.kept.append(key)
    if "encoder" in parts and not any(k.startswith("encoder.layers.") for k in report.copied):
        raise ValueError(f"init_from: no encoder layer of {source} fits this model")
    model.load_state_dict(updates, strict=False)
    if "normalize" in parts and normalize is not None:
        path = next((os.path.join(src["folder"], name) for name in NORMALIZE_FILES
                     if os.path.isfile(os.path.join(src["folder"], name))), None)
        if path is None:
            raise FileNotFoundError(f"init_from: no input statistics ({' or '.join(NORMALIZE_FILES)}) in {source}")
        normalize._load(path)
        report.normalize = True
    logger.info("%s", report.summary())
    return report
