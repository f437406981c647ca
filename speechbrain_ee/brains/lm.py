"""A small Transformer LM trained on a recipe's training transcripts (for
shallow fusion in the AED beam search)."""

import copy
import logging
import os

import speechbrain as sb
import torch

from speechbrain_ee.data.manifest import read_manifest
from speechbrain_ee.data.pipelines import seq2seq_text_pipeline, text_pipeline
from speechbrain_ee.losses import sequence_ce_loss

logger = logging.getLogger(__name__)


class TranscriptLMBrain(sb.Brain):
    """Next-token training of ``modules.lm`` (SpeechBrain ``TransformerLM``)
    on ``tokens_bos -> tokens_eos``; keeps the weights of the epoch with the
    lowest validation loss in ``self.best_state``.

    Hparams: ``bos_index``, ``label_smoothing`` (default 0).
    """

    def compute_forward(self, batch, stage):
        """Next-token log-probabilities."""
        tokens_bos, _ = batch.to(self.device).tokens_bos
        return torch.log_softmax(self.modules.lm(tokens_bos), dim=-1)

    def compute_objectives(self, predictions, batch, stage):
        """Label-smoothed CE on the real tokens + EOS (padding ignored)."""
        tokens_eos, lens = batch.tokens_eos
        return sequence_ce_loss(predictions, tokens_eos, lens, self.hparams.bos_index,
                                getattr(self.hparams, "label_smoothing", 0.0))

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs the losses; remembers the best validation epoch."""
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
        elif stage == sb.Stage.VALID:
            logger.info("LM epoch %s: train loss %.3f, valid loss %.3f", epoch, self.train_loss, stage_loss)
            if stage_loss < getattr(self, "best_loss", float("inf")):
                self.best_loss = stage_loss
                lm = self.modules.lm
                self.best_state = copy.deepcopy(getattr(lm, "module", lm).state_dict())  # unwrapped from DDP


def text_dataset(csv_path, tokenizer, bos_index, eos_index):
    """Transcripts of a manifest as ``tokens_bos`` / ``tokens_eos`` (no audio)."""
    read_manifest(csv_path)
    data = sb.dataio.dataset.DynamicItemDataset.from_csv(csv_path=csv_path)
    data.add_dynamic_item(text_pipeline(tokenizer))
    data.add_dynamic_item(seq2seq_text_pipeline(bos_index, eos_index))
    data.set_output_keys(["id", "tokens_bos", "tokens_eos"])
    return data


def lm_boundaries(hparams):
    """The LM's sentence start and end: ``lm_bos_index``/``lm_eos_index``
    (a CTC recipe, whose tokenizer has no BOS/EOS pieces, uses its blank as
    EOS and one class beyond it as BOS), else the recipe's
    ``bos_index``/``eos_index``. BOS must differ from EOS: it marks the
    positions the LM loss ignores.

    Example
    -------
    >>> lm_boundaries({"bos_index": 1, "eos_index": 2}), lm_boundaries({"lm_bos_index": 29, "lm_eos_index": 28})
    ((1, 2), (29, 28))
    >>> lm_boundaries({"lm_bos_index": 28, "lm_eos_index": 28})
    Traceback (most recent call last):
    ...
    ValueError: the LM's BOS and EOS must differ (BOS marks the ignored positions), both are 28
    """
    bos = hparams.get("lm_bos_index", hparams.get("bos_index"))
    eos = hparams.get("lm_eos_index", hparams.get("eos_index"))
    if bos == eos:
        raise ValueError(f"the LM's BOS and EOS must differ (BOS marks the ignored positions), both are {bos}")
    return bos, eos


def train_transcript_lm(hparams, run_opts=None):
    """Trains ``hparams["lm_model"]`` on the transcripts of ``train_csv``
    (validated on ``valid_csv``) with the recipe's tokenizer, keeps the best
    epoch and saves it to ``lm_checkpoint``; an existing checkpoint is loaded
    instead (resumed runs). Called by :func:`speechbrain_ee.recipe.run` when
    the yaml has ``train_lm``, on every process: the LM Brain gets the run's
    ``run_opts`` (device, DDP backend), the main process saves its best
    epoch and every process loads that file.

    Hparams used: ``lm_model``, ``lm_checkpoint``, ``lm_epochs``,
    ``lm_opt_class``, ``lm_batch_size``, ``tokenizer``, ``train_csv``,
    ``valid_csv``, the sentence boundaries (:func:`lm_boundaries`), optional
    ``lm_label_smoothing``.
    """
    lm = hparams["lm_model"]
    path = hparams["lm_checkpoint"]
    if os.path.isfile(path):
        lm.load_state_dict(torch.load(path, map_location="cpu"))
        logger.info("loaded the transcript LM from %s", path)
        return lm.eval()
    bos, eos = lm_boundaries(hparams)
    make = lambda csv: text_dataset(csv, hparams["tokenizer"], bos, eos)  # noqa: E731
    brain = TranscriptLMBrain(
        modules={"lm": lm}, opt_class=hparams["lm_opt_class"],
        hparams={"bos_index": bos, "label_smoothing": hparams.get("lm_label_smoothing", 0.0)},
        run_opts={**(run_opts or {}), "noprogressbar": True},
    )
    loader = {"batch_size": hparams.get("lm_batch_size", 32), "shuffle": True}
    brain.fit(sb.utils.epoch_loop.EpochCounter(hparams["lm_epochs"]), make(hparams["train_csv"]),
              make(hparams["valid_csv"]), train_loader_kwargs=loader,
              valid_loader_kwargs={"batch_size": hparams.get("lm_batch_size", 32)})
    if sb.utils.distributed.if_main_process():  # the main process's best epoch is the LM of every process
        lm.load_state_dict(brain.best_state)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        torch.save(lm.state_dict(), path)
        logger.info("transcript LM: best valid loss %.3f, saved to %s", brain.best_loss, path)
    sb.utils.distributed.ddp_barrier()
    lm.load_state_dict(torch.load(path, map_location="cpu"))
    return lm.eval()
