"""Brain for early-exit CTC models (Conformer-CTC, wav2vec2-CTC)."""

import json
import logging
import os

import speechbrain as sb
import torch

from speechbrain_ee.checkpoints import load_averaged_model
from speechbrain_ee.decoding import (
    beam_transcripts, ctc_vocab_list, greedy_transcripts, hparams_nbest_rescorer, rescored_beam_transcripts,
)
from speechbrain_ee.losses import early_exit_ctc_loss
from speechbrain_ee.features import model_inputs

logger = logging.getLogger(__name__)


class EarlyExitCTCBrain(sb.Brain):
    """Trains and evaluates a multi-exit CTC model; everything comes from
    ``self.hparams`` / ``self.modules``.

    Expected modules: ``model`` (an :class:`~speechbrain_ee.nnet.EarlyExitCTC`
    or any model with the same interface) and, for filterbank models,
    ``normalize`` (SpeechBrain ``InputNormalization``).
    Expected hparams: ``compute_features`` (Fbank; absent for waveform
    models such as wav2vec2), ``tokenizer``
    (SentencePiece processor), ``blank_index``, ``error_rate_computer``,
    ``cer_computer``, ``train_logger``, ``checkpointer``, ``lr_annealing``;
    optional: ``wav_augment``, ``fea_augment``, ``exit_weights``,
    ``avg_checkpoints`` (test and export the average of that many best
    checkpoints),
    ``test_searcher`` (a partial of ``CTCPrefixBeamSearcher``),
    ``lm_model`` with ``lm_weight`` > 0 (a transcript ``TransformerLM``
    rescoring the test searcher's ``lm_nbest``-best list, default its beam;
    its ``lm_bos_index``/``lm_eos_index``), ``oov_penalty`` > 0 with
    ``lexicon_file`` (the N-best list's words outside that lexicon cost
    ``oov_penalty`` each), ``output_folder``.
    """

    # ------------------------------------------------------------------ forward
    def compute_forward(self, batch, stage):
        """Features -> per-exit log-posteriors and relative output lengths."""
        inputs, lengths = self.batch_inputs(batch.to(self.device), stage)
        log_probs, out_lens = self.modules.model(inputs, lengths)
        rel_lens = out_lens.float() / log_probs[0].shape[1]
        return log_probs, rel_lens

    def batch_inputs(self, batch, stage):
        """Model inputs and their integer lengths (augmented in training)."""
        wavs, wav_lens = batch.sig
        if stage == sb.Stage.TRAIN and hasattr(self.hparams, "wav_augment"):
            wavs, wav_lens = self.hparams.wav_augment(wavs, wav_lens)
        augment = getattr(self.hparams, "fea_augment", None) if stage == sb.Stage.TRAIN else None
        return model_inputs(
            wavs, wav_lens,
            compute_features=getattr(self.hparams, "compute_features", None),
            normalize=getattr(self.modules, "normalize", None),
            feature_augment=augment,
        )

    def compute_objectives(self, predictions, batch, stage):
        """Σ over exits of CTC (Eq. 2); per-exit WER/CER outside training."""
        log_probs, rel_lens = predictions
        tokens, tokens_lens = batch.tokens
        loss, per_exit = early_exit_ctc_loss(
            log_probs, rel_lens, tokens, tokens_lens, self.hparams.blank_index,
            exit_weights=getattr(self.hparams, "exit_weights", None),
        )
        self.record_exit_losses(per_exit)
        if stage != sb.Stage.TRAIN:
            targets = [wrd.split() for wrd in batch.wrd]
            for i, lp in enumerate(log_probs):
                hyps = self.transcribe_exit(lp, rel_lens, stage)
                self.wer_metrics[i].append(batch.id, hyps, targets)
                self.cer_metrics[i].append(batch.id, hyps, targets)
        return loss

    def record_exit_losses(self, per_exit):
        """Adds a batch's per-exit losses to the stage's running sums."""
        for i, exit_loss in enumerate(per_exit):
            self.exit_loss_sums[i] += exit_loss.detach().item()
        self.exit_loss_count += 1

    def transcribe_exit(self, log_probs, rel_lens, stage):
        """Greedy CTC in validation, prefix beam search at test."""
        if stage == sb.Stage.TEST and self.rescorer is not None:
            return rescored_beam_transcripts(self.test_searcher, log_probs, rel_lens, self.rescorer)
        if stage == sb.Stage.TEST and self.test_searcher is not None:
            return beam_transcripts(self.test_searcher, log_probs, rel_lens)
        return greedy_transcripts(log_probs, rel_lens, self.hparams.blank_index, self.hparams.tokenizer)

    # ------------------------------------------------------------------ hooks
    @property
    def exit_layers(self):
        """Encoder layer of each exit."""
        return list(self.modules.model.exit_layers)

    def on_fit_start(self):
        """Recovers the checkpoint, then plans the learning-rate schedule
        (:meth:`plan_schedule`), so a resumed run with another
        ``number_of_epochs`` anneals to its new end."""
        super().on_fit_start()
        self.plan_schedule()

    def plan_schedule(self):
        """Sets the length of ``lr_annealing`` (``num_training_steps``) to
        the epochs ``epoch_counter`` plans (its ``limit``, which a
        :class:`~speechbrain_ee.time_budget.TimeBudgetEpochCounter` with
        ``fit_to_budget`` lowers to what fits) times
        ``optimizer_steps_per_epoch`` (set by :func:`speechbrain_ee.recipe.run`).
        Does nothing when either is missing."""
        per_epoch = getattr(self, "optimizer_steps_per_epoch", None)
        annealing = getattr(self.hparams, "lr_annealing", None)
        counter = getattr(self.hparams, "epoch_counter", None)
        if not per_epoch or counter is None or not hasattr(annealing, "num_training_steps"):
            return
        planned = counter.limit * per_epoch
        if planned != annealing.num_training_steps:
            logger.info("learning-rate schedule: %d steps (%d epochs)", planned, counter.limit)
            annealing.num_training_steps = planned

    def on_evaluate_start(self, max_key=None, min_key=None):
        """Loads the best checkpoint, or the average of the
        ``avg_checkpoints`` best ones (hparam, default 1)."""
        super().on_evaluate_start(max_key=max_key, min_key=min_key)
        if self.checkpointer is not None:
            self.averaged_checkpoints = load_averaged_model(
                self.checkpointer, self.modules.model, getattr(self.hparams, "avg_checkpoints", 1),
                min_key=min_key, max_key=max_key,
            )

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Steps the learning-rate schedule after each optimiser step."""
        if should_step and hasattr(self.hparams, "lr_annealing"):
            self.hparams.lr_annealing(self.optimizer)

    def on_stage_start(self, stage, epoch=None):
        """Resets the per-exit accumulators; re-plans the learning-rate
        schedule before each training epoch (the epoch counter may have
        lowered its limit to fit its time budget)."""
        if stage == sb.Stage.TRAIN:
            self.plan_schedule()
        n = len(self.exit_layers)
        self.exit_loss_sums = [0.0] * n
        self.exit_loss_count = 0
        if stage != sb.Stage.TRAIN:
            self.wer_metrics = [self.hparams.error_rate_computer() for _ in range(n)]
            self.cer_metrics = [self.hparams.cer_computer() for _ in range(n)]
        self.test_searcher = self.rescorer = None
        if stage == sb.Stage.TEST and hasattr(self.hparams, "test_searcher"):
            vocab = ctc_vocab_list(self.hparams.tokenizer, self.hparams.blank_index)
            self.test_searcher = self.hparams.test_searcher(
                blank_index=self.hparams.blank_index, vocab_list=vocab
            )
            self.rescorer = hparams_nbest_rescorer(self.hparams, self.device)
            if self.rescorer is not None:  # N-best list, every alternative kept (SpeechBrain's note on topk)
                self.test_searcher.topk = int(getattr(self.hparams, "lm_nbest", None) or self.test_searcher.beam_size)
                self.test_searcher.prune_history = False

    def exit_stats(self, stage):
        """Per-exit loss (and WER/CER outside training) of the stage that ended."""
        count = max(1, self.exit_loss_count)
        stats = {}
        for i, layer in enumerate(self.exit_layers):
            stats[f"loss_exit{layer}"] = round(self.exit_loss_sums[i] / count, 4)
            if stage != sb.Stage.TRAIN:
                stats[f"WER_exit{layer}"] = round(self.wer_metrics[i].summarize("error_rate"), 3)
                stats[f"CER_exit{layer}"] = round(self.cer_metrics[i].summarize("error_rate"), 3)
        if stage != sb.Stage.TRAIN:
            wers = [stats[f"WER_exit{layer}"] for layer in self.exit_layers]
            stats["WER"] = wers[-1]
            stats["mean_WER"] = round(sum(wers) / len(wers), 3)
        return stats

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs per-exit statistics, checkpoints on validation, writes WER files at test."""
        stats = {"loss": stage_loss, **self.exit_stats(stage)}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if stage == sb.Stage.VALID:
            lr = self.optimizer.param_groups[0]["lr"]
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": lr},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(
                meta={"mean_WER": stats["mean_WER"], "WER": stats["WER"], "epoch": epoch},
                min_keys=["mean_WER"],
                num_to_keep=getattr(self.hparams, "avg_checkpoints", 1),
            )
        elif stage == sb.Stage.TEST:
            counter = getattr(self.hparams, "epoch_counter", None)
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": counter.current if counter else None},
                test_stats=stats,
            )
            self.test_stats = stats
            self.write_wer_files()

    def write_wer_files(self):
        """One SpeechBrain WER file per exit plus a JSON summary in ``output_folder``."""
        folder = getattr(self.hparams, "output_folder", None)
        if folder is None:
            return
        os.makedirs(folder, exist_ok=True)
        name = getattr(self, "test_name", "test")
        for i, layer in enumerate(self.exit_layers):
            with open(os.path.join(folder, f"wer_{name}_exit{layer}.txt"), "w") as handle:
                self.wer_metrics[i].write_stats(handle)
        summary = self.exit_summary()
        with open(os.path.join(folder, f"exit_summary_{name}.json"), "w") as handle:
            json.dump(summary, handle, indent=2)

    def exit_summary(self):
        """``{"exit_layers", "wer", "cer"}`` (percent) of the last test stage,
        with the model's parameter count and the torch threads of this run."""
        return {
            "exit_layers": self.exit_layers,
            "wer": [round(m.summarize("error_rate"), 3) for m in self.wer_metrics],
            "cer": [round(m.summarize("error_rate"), 3) for m in self.cer_metrics],
            "params": sum(p.numel() for p in self.modules.model.parameters()),
            "torch_threads": torch.get_num_threads(),
        }
