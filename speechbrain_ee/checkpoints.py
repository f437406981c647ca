"""Checkpoints: averaging for evaluation, compact and verified model files
for export, and training checkpoints that survive a full disk or a kill.

SpeechBrain's Transformer/Conformer recipes test the average of the best
(or last) few checkpoints instead of the single best one
(``avg_checkpoints`` in their yaml); small corpora such as AN4, whose dev WER
moves by several points from one epoch to the next, gain the most from it.

Exports carry ``checksums.sha256`` (:func:`write_checksums`), checked when a
model is loaded (:func:`verify_export_files`). Recipes save their training
state with :class:`SafeCheckpointer`: atomic checkpoints, a fall-back to the
last intact one, and the random generators' state (:class:`RNGState`).
"""

import hashlib
import logging
import os
import pickle
import random
import shutil
import tempfile
import warnings

import numpy as np
import torch
from speechbrain.utils.checkpoints import (
    DEFAULT_SAVE_HOOKS,
    METAFNAME,
    PARAMFILE_EXT,
    Checkpoint,
    Checkpointer,
    average_checkpoints,
    get_default_hook,
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.distributed import main_process_only

from speechbrain_ee.checks import check_number

logger = logging.getLogger(__name__)


def load_averaged_model(checkpointer, model, num_checkpoints, min_key=None, max_key=None, recoverable="model"):
    """Loads into ``model`` the average of the ``num_checkpoints`` best
    checkpoints of ``checkpointer`` (best by ``min_key`` / ``max_key``).

    Arguments
    ---------
    checkpointer : speechbrain.utils.checkpoints.Checkpointer
        The run's checkpointer (``recoverable`` must be one of its recoverables).
    model : torch.nn.Module
        Receives the averaged parameters.
    num_checkpoints : int
        How many checkpoints to average; 1 (or a run that kept only one)
        leaves ``model`` untouched.
    min_key, max_key : str, optional
        The checkpoint meta key that ranks checkpoints.
    recoverable : str
        Name of the model among the checkpointer's recoverables.

    Returns
    -------
    list
        The checkpoints averaged (empty when nothing was averaged).

    Example
    -------
    >>> import torch
    >>> from speechbrain.utils.checkpoints import Checkpointer
    >>> model = torch.nn.Linear(1, 1, bias=False)
    >>> checkpointer = Checkpointer(getfixture("tmpdir"), {"model": model})
    >>> for weight, wer in [(1.0, 30.0), (2.0, 10.0), (4.0, 20.0)]:
    ...     _ = model.weight.data.fill_(weight)
    ...     _ = checkpointer.save_checkpoint(meta={"WER": wer})
    >>> used = load_averaged_model(checkpointer, model, 2, min_key="WER")
    >>> len(used), model.weight.item()
    (2, 3.0)
    """
    check_number("avg_checkpoints", num_checkpoints, minimum=1, integer=True)
    if num_checkpoints == 1:
        return []
    checkpoints = checkpointer.find_checkpoints(
        min_key=min_key, max_key=max_key, max_num_checkpoints=int(num_checkpoints)
    )
    if len(checkpoints) < 2:
        return []
    state = average_checkpoints(checkpoints, recoverable)
    model.load_state_dict(state, strict=True)
    logger.info(
        "averaged %d checkpoints: %s", len(checkpoints),
        ", ".join(str(ckpt.meta.get("epoch", ckpt.path.name)) for ckpt in checkpoints),
    )
    return checkpoints


def derived_buffers(module):
    """State-dict keys that the module recomputes when it is built: the
    tables of SpeechBrain's positional encodings (``pe`` of
    ``PositionalEncoding``: 2500 x d_model per attention decoder;
    ``inv_freq`` of ``RelPosEncXL``). :func:`compact_state_dict` leaves them out.

    Example
    -------
    >>> from speechbrain.lobes.models.transformer.Transformer import PositionalEncoding
    >>> model = torch.nn.ModuleDict({"pos": PositionalEncoding(8, max_len=10), "out": torch.nn.Linear(8, 2)})
    >>> derived_buffers(model)
    ['pos.pe']
    """
    from speechbrain.lobes.models.transformer.Transformer import PositionalEncoding
    from speechbrain.nnet.attention import RelPosEncXL

    keys = []
    for prefix, sub in module.named_modules():
        if isinstance(sub, (PositionalEncoding, RelPosEncXL)):
            keys += [f"{prefix}.{name}" if prefix else name for name, _ in sub.named_buffers(recurse=False)]
    return keys


def compact_state_dict(module, dtype=None):
    """``module.state_dict()`` without :func:`derived_buffers`, floating
    tensors cast to ``dtype`` (e.g. ``torch.float16``: half the file; the
    loaded model computes in its own precision). :func:`load_compact_state_dict`
    loads it back.

    Example
    -------
    >>> model = torch.nn.Linear(4, 2)
    >>> {k: v.dtype for k, v in compact_state_dict(model, torch.float16).items()}
    {'weight': torch.float16, 'bias': torch.float16}
    """
    derived = set(derived_buffers(module))
    return {
        key: value.to(dtype) if dtype is not None and value.is_floating_point() else value
        for key, value in module.state_dict().items()
        if key not in derived
    }


def load_compact_state_dict(module, path):
    """Loads a (possibly :func:`compact <compact_state_dict>`) state dict
    from ``path`` into ``module``, strictly: every key must match except the
    derived buffers, which may be absent; values are cast to the module's
    dtypes. A SpeechBrain ``Pretrainer`` hook (``custom_hooks``), unlike its
    default transfer, which only warns about missing or unexpected keys.

    Example
    -------
    >>> model = torch.nn.Linear(4, 2)
    >>> path = getfixture("tmpdir") / "model.ckpt"
    >>> torch.save(compact_state_dict(model, torch.float16), path)
    >>> load_compact_state_dict(torch.nn.Linear(4, 2), path).weight.dtype
    torch.float32
    >>> load_compact_state_dict(torch.nn.Linear(4, 3), path)
    Traceback (most recent call last):
    ...
    ValueError: ...model.ckpt does not fit the model: weight: (2, 4) in the file, (3, 4) in the model...
    """
    verify_export_files(path)
    state = torch.load(path, map_location="cpu")
    expected = module.state_dict()
    derived = set(derived_buffers(module))
    problems = [f"missing {key}" for key in expected if key not in state and key not in derived]
    problems += [f"unexpected {key}" for key in state if key not in expected]
    problems += [
        f"{key}: {tuple(state[key].shape)} in the file, {tuple(value.shape)} in the model"
        for key, value in expected.items() if key in state and state[key].shape != value.shape
    ]
    if problems:
        raise ValueError(f"{path} does not fit the model: {'; '.join(problems[:8])}"
                         + (f" (and {len(problems) - 8} more)" if len(problems) > 8 else ""))
    module.load_state_dict(state, strict=False)
    return module


CHECKSUM_FILE = "checksums.sha256"
VERIFIED_SUFFIXES = (".ckpt", ".model")  # weights, statistics, tokenizer: damage there is silent
_verified = set()


class ChecksumError(ValueError):
    """An exported file whose content differs from its recorded sha256."""


def file_sha256(path, block=1 << 20):
    """Hex sha256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksums(folder):
    """Writes ``folder/checksums.sha256`` (``sha256sum`` format, so
    ``sha256sum -c checksums.sha256`` checks it too) with every regular file
    of ``folder`` but itself, atomically. Returns ``{name: sha256}``.

    Example
    -------
    >>> folder = getfixture("tmpdir")
    >>> _ = (folder / "a.ckpt").write_text("weights", "ascii")
    >>> write_checksums(str(folder)) == {"a.ckpt": hashlib.sha256(b"weights").hexdigest()}
    True
    >>> (folder / CHECKSUM_FILE).read_text("ascii").endswith("  a.ckpt" + chr(10))
    True
    """
    names = sorted(
        name for name in os.listdir(folder)
        if name != CHECKSUM_FILE and os.path.isfile(os.path.join(folder, name)) and not name.startswith(".")
    )
    sums = {name: file_sha256(os.path.join(folder, name)) for name in names}
    atomic_write_text(os.path.join(folder, CHECKSUM_FILE), "".join(f"{h}  {n}\n" for n, h in sums.items()))
    return sums


def update_checksums(folder, names):
    """Records in ``folder/checksums.sha256`` the sha256 of the files
    ``names`` (added to the model after its export, e.g. by
    :mod:`speechbrain_ee.attach_lm`); the other entries are kept as they are
    (a damaged file is not blessed). A folder without the file (an older
    export) is left so.

    Example
    -------
    >>> folder = getfixture("tmpdir")
    >>> _ = (folder / "model.ckpt").write_text("weights", "ascii")
    >>> _ = write_checksums(str(folder))
    >>> _ = (folder / "lm.ckpt").write_text("lm", "ascii")
    >>> sorted(update_checksums(str(folder), ["lm.ckpt"]))
    ['lm.ckpt', 'model.ckpt']
    """
    manifest = os.path.join(folder, CHECKSUM_FILE)
    if not os.path.isfile(manifest):
        return None
    sums = read_checksums(manifest)
    sums.update({name: file_sha256(os.path.join(folder, name)) for name in names})
    atomic_write_text(manifest, "".join(f"{h}  {n}\n" for n, h in sorted(sums.items())))
    return sums


def read_checksums(path):
    """``{name: sha256}`` of a ``checksums.sha256`` file."""
    sums = {}
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split(None, 1)
            if len(parts) != 2 or len(parts[0]) != 64:
                raise ChecksumError(f"{path} line {number}: not a '<sha256>  <file>' line")
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def verify_export_files(path):
    """Checks the weights, statistics and tokenizer files (``*.ckpt``,
    ``*.model``) of the exported model directory holding ``path`` (links
    followed) against its ``checksums.sha256``: a changed file raises
    :class:`ChecksumError` naming it, instead of loading as garbage. A
    directory without the file (exported by an older version) loads with a
    warning. Text files (``*.yaml``, ``lexicon.txt``) may be edited and are
    not checked. Each file is hashed once per process (and again if it
    changes on disk).
    """
    folder = os.path.dirname(os.path.realpath(path))
    manifest = os.path.join(folder, CHECKSUM_FILE)
    if not os.path.isfile(manifest):
        if folder not in _verified:
            _verified.add(folder)
            warnings.warn(f"{folder} has no {CHECKSUM_FILE} (exported by an older version): "
                          "its files are loaded unverified", stacklevel=2)
        return
    for name, expected in read_checksums(manifest).items():
        target = os.path.join(folder, name)
        if not name.endswith(VERIFIED_SUFFIXES) or not os.path.isfile(target):
            continue
        stat = os.stat(target)
        key = (target, stat.st_size, stat.st_mtime_ns)
        if key in _verified:
            continue
        if file_sha256(target) != expected:
            raise ChecksumError(
                f"{target} is damaged or was changed after export: its sha256 differs from {manifest}"
            )
        _verified.add(key)


def atomic_write_text(path, text):
    """Writes ``text`` to ``path`` through a temporary file in the same
    folder and a rename: readers see the old file or the new one, never
    half of it."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# ---------------------------------------------------------------- training checkpoints
@register_checkpoint_hooks
class RNGState:
    """A checkpoint recoverable holding the random generators' states:
    PyTorch's (CPU and CUDA; :class:`~speechbrain_ee.nnet.dropout.FastDropout`
    seeds its masks from it), NumPy's global one and Python's ``random``, so
    that a run resumed after a kill draws the same dropout masks,
    augmentations and shuffles as an uninterrupted one.
    :class:`SafeCheckpointer` adds it to every run's recoverables.

    Example
    -------
    >>> import random
    >>> path = getfixture("tmpdir") / "rng.ckpt"
    >>> RNGState().save(path)
    >>> first = (torch.rand(1).item(), random.random())
    >>> RNGState().load(path)
    >>> (torch.rand(1).item(), random.random()) == first
    True
    """

    @mark_as_saver
    def save(self, path):
        """Writes the states to ``path``."""
        numpy_state = np.random.get_state(legacy=False)
        state = {
            "torch": torch.get_rng_state(),
            "numpy_key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "numpy_rest": [numpy_state["state"]["pos"], numpy_state["has_gauss"], numpy_state["gauss"]],
            "python": random.getstate(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(state, path)

    @mark_as_loader
    def load(self, path, end_of_epoch=True):
        """Restores the states saved in ``path``."""
        state = torch.load(path, map_location="cpu")
        torch.set_rng_state(state["torch"])
        pos, has_gauss, gauss = state["numpy_rest"]
        np.random.set_state({
            "bit_generator": "MT19937", "has_gauss": has_gauss, "gauss": gauss,
            "state": {"key": state["numpy_key"].numpy().astype(np.uint32), "pos": pos},
        })
        version, internal, gauss_next = state["python"]
        random.setstate((version, tuple(internal), gauss_next))
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])


class SafeCheckpointer(Checkpointer):
    """SpeechBrain's ``Checkpointer`` that never leaves a half-written
    checkpoint where a resume would pick it, and resumes from the last intact
    one:

    * each checkpoint is written in a hidden temporary folder, its files
      synced to disk, the sha256 of every file recorded in its ``CKPT.yaml``
      (written last), and the folder then renamed to its ``CKPT+...`` name
      (a full disk or a kill leaves at worst a ``.tmp-CKPT+...`` folder,
      removed by the next save);
    * checkpoints whose files are missing or differ from their recorded sha256
      are left out (with a warning) of every search, so training resumes
      from, and tests average, intact ones; a checkpoint that still fails to
      load (e.g. one written by the plain ``Checkpointer``) makes
      :meth:`recover_if_possible` fall back to the next one;
    * the random generators' states are saved with every checkpoint
      (:class:`RNGState`; optional when loading older checkpoints), so that
      kill + resume reproduces an uninterrupted run.

    Arguments as ``speechbrain.utils.checkpoints.Checkpointer``.

    Example
    -------
    >>> model = torch.nn.Linear(1, 1)
    >>> checkpointer = SafeCheckpointer(getfixture("tmpdir"), {"model": model})
    >>> ckpt = checkpointer.save_checkpoint(meta={"epoch": 1})
    >>> sorted(ckpt.meta["sha256"]), sorted(p.name for p in ckpt.path.iterdir())
    (['model', 'rng'], ['CKPT.yaml', 'model.ckpt', 'rng.ckpt'])
    """

    def __init__(self, checkpoints_dir, recoverables=None, *args, **kwargs):
        super().__init__(checkpoints_dir, recoverables, *args, **kwargs)
        if "rng" not in self.recoverables:
            self.add_recoverable("rng", RNGState(), optional_load=True)
        self._intact = {}

    @main_process_only  # as SpeechBrain's: the main process writes, every process gets the result
    def save_checkpoint(self, meta={}, end_of_epoch=True, name=None, verbosity=logging.INFO):
        """As ``Checkpointer.save_checkpoint``, atomically (see the class)."""
        final = self._new_checkpoint_dirpath() if name is None else self._custom_checkpoint_dirpath(name)
        for stale in self.checkpoints_dir.glob(".tmp-*"):  # left by an interrupted save
            shutil.rmtree(stale, ignore_errors=True)
        tmp = final.parent / f".tmp-{final.name}"
        os.makedirs(tmp)
        try:
            for key, obj in self.recoverables.items():
                path = tmp / f"{key}{PARAMFILE_EXT}"
                hook = self.custom_save_hooks.get(key) or get_default_hook(obj, DEFAULT_SAVE_HOOKS)
                if hook is None:
                    raise RuntimeError(f"Don't know how to save {type(obj)} ({key}): add a save hook")
                hook(obj, path)
            files = sorted(tmp.glob(f"*{PARAMFILE_EXT}"))
            for path in files:
                _fsync(path)
            sums = {path.stem: file_sha256(path) for path in files}
            saved_meta = self._save_checkpoint_metafile(tmp / METAFNAME, {**meta, "sha256": sums}, end_of_epoch)
            _fsync(tmp / METAFNAME)
            if final.exists():  # a named checkpoint saved again
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync(final.parent)
            for path in files:  # just hashed: no need to again when listing
                stat = (final / path.name).stat()
                self._intact[(str(final / path.name), stat.st_size, stat.st_mtime_ns)] = True
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        logger.log(verbosity, "Saved a checkpoint in %s", final)
        paramfiles = {key: final / f"{key}{PARAMFILE_EXT}" for key in saved_meta["sha256"]}
        return Checkpoint(final, saved_meta, paramfiles)

    def is_intact(self, checkpoint):
        """Whether every file recorded in ``checkpoint``'s meta is there with
        its sha256 (checkpoints without sums, from the plain
        ``Checkpointer``, count as intact; loading them is still guarded)."""
        sums = checkpoint.meta.get("sha256")
        if not sums:
            return True
        for key, expected in sums.items():
            path = checkpoint.path / f"{key}{PARAMFILE_EXT}"
            if not path.is_file():
                return False
            stat = path.stat()
            cache_key = (str(path), stat.st_size, stat.st_mtime_ns)
            if cache_key not in self._intact:
                self._intact[cache_key] = file_sha256(path) == expected
            if not self._intact[cache_key]:
                return False
        return True

    def list_checkpoints(self):
        """The intact checkpoints of the folder (see :meth:`is_intact`); the
        others are named in a warning."""
        checkpoints = []
        for folder in self._list_checkpoint_dirs():
            try:
                checkpoint = self._construct_checkpoint_objects([folder])[0]
                intact = self.is_intact(checkpoint)
            except Exception as err:  # unreadable CKPT.yaml
                checkpoint, intact = None, False
                logger.debug("cannot read %s: %s", folder, err)
            if intact:
                checkpoints.append(checkpoint)
            else:
                logger.warning("checkpoint %s is damaged or incomplete: skipped", folder)
        return checkpoints

    def recover_if_possible(self, importance_key=None, max_key=None, min_key=None, ckpt_predicate=None):
        """As ``Checkpointer.recover_if_possible``, falling back to the next
        checkpoint (in the same order) when the chosen one fails to load."""
        for checkpoint in self.find_checkpoints(importance_key, max_key, min_key, ckpt_predicate):
            try:
                self.load_checkpoint(checkpoint)
                return checkpoint
            except (RuntimeError, OSError, EOFError, ValueError, KeyError, pickle.UnpicklingError) as err:
                logger.warning("cannot load checkpoint %s (%s): trying the previous one", checkpoint.path, err)
        logger.info("Would load a checkpoint here, but none found yet.")
        return None


def _fsync(path):
    """Flushes a file or folder to disk (best effort: not every file system allows it for folders)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_model_dir(model_dir):
    """Loads ``hyperparams.yaml`` of an exported model directory and its
    parameters (the files verified against ``checksums.sha256``).

    Arguments
    ---------
    model_dir : str
        Directory with ``hyperparams.yaml``, ``model.yaml`` and checkpoints.

    Returns
    -------
    dict
        The loaded hparams, parameters in place.
    """
    from hyperpyyaml import load_hyperpyyaml

    hparams_path = os.path.join(model_dir, "hyperparams.yaml")
    if not os.path.isfile(hparams_path):
        raise FileNotFoundError(f"not a model directory (no hyperparams.yaml): {model_dir}")
    with open(hparams_path) as handle:
        hparams = load_hyperpyyaml(handle, {"pretrained_path": os.path.abspath(model_dir)})
    pretrainer = hparams["pretrainer"]
    pretrainer.collect_files()
    pretrainer.load_collected()
    return hparams
