"""Brain for early-exit CTC models (Conformer-CTC, wav2vec2-CTC)."""

import json
import logging
import os

import speechbrain as sb
import torch
from speechbrain.utils.metric_stats import ErrorRateStats

from speechbrain_ee.brains.contract import BrainOption, check_dataset_keys, declared_option
from speechbrain_ee.brains.scheduling import is_epoch_scheduler, step_epoch_scheduler
from speechbrain_ee.checks import check_number
from speechbrain_ee.checkpoints import load_averaged_model
from speechbrain_ee.decoding import greedy_transcripts
from speechbrain_ee.features import model_inputs
from speechbrain_ee.inference.decoders import build_text_decoder
from speechbrain_ee.losses import (
    check_distillation_options,
    early_exit_ctc_loss,
    exit_distillation_loss,
    resolve_exit_weights,
)

logger = logging.getLogger(__name__)


class EarlyExitCTCBrain(sb.Brain):
    """Trains and evaluates a multi-exit CTC model (Eq. 2: the sum of the
    exits' CTC losses, optionally weighted and with self-distillation:
    ``Σ_i w_i CTC_i + distill_weight · Σ_{i<top} KD_i``, see
    :meth:`compute_objectives`); everything comes from ``self.hparams`` /
    ``self.modules``, and it works as SpeechBrain's own Brains do under
    ``torchrun`` (DDP: the model's attributes are read from the unwrapped
    module, the forward pass goes through the wrapper).

    Contract
    --------
    Modules: ``model`` (an :class:`~speechbrain_ee.nnet.EarlyExitCTC`, or any
    model with its interface: ``forward(inputs, lengths) -> (per-exit
    log-probs, lengths)``, ``exit_layers``, ``start``/``step``), and for
    filterbank models ``normalize`` (SpeechBrain ``InputNormalization``).

    Batch keys (the names are options, so a project's own pipeline keys work):
    ``signal_key`` (default ``sig``: padded waveforms + relative lengths),
    ``tokens_key`` (``tokens``: padded token ids + relative lengths),
    ``transcript_key`` (``wrd``: the reference text, a str per utterance, read
    outside training), ``id``. The training and validation sets are checked
    for them when ``fit`` starts, the test set when ``evaluate`` starts.

    Required hparams: ``tokenizer`` (SentencePiece processor: ``decode_ids``,
    ``id_to_piece``, ``get_piece_size``), ``blank_index``. Every optional
    hparam, its default and meaning is declared once in :attr:`OPTIONS`
    (``wav_augment``, ``fea_augment``, ``compute_features``, ``lr_annealing``,
    ``test_beam_size``, ``avg_checkpoints``...). Augmenters that add
    utterances (``concat_original``, ``repeat_augment``) get the labels
    replicated with their ``replicate_labels``, as in SpeechBrain's recipes.
    ``lr_annealing`` may be a step-level scheduler (called with the optimiser
    after every optimiser step) or an epoch-level one (``NewBobScheduler``,
    ``StepScheduler``, ``LinearScheduler``, ``ReduceLROnPlateau``: stepped after
    validation with ``lr_annealing_metric``), see
    :mod:`speechbrain_ee.brains.scheduling`. The test stage decodes with
    :func:`~speechbrain_ee.inference.decoders.build_text_decoder`, the same
    decoder :class:`~speechbrain_ee.inference.EarlyExitASR` uses.
    """

    OPTIONS = (
        BrainOption("signal_key", "sig", "batch key of the padded waveforms and relative lengths"),
        BrainOption("tokens_key", "tokens", "batch key of the padded target token ids and relative lengths"),
        BrainOption("transcript_key", "wrd", "batch key of the reference transcripts (validation and test)"),
        BrainOption("compute_features", None, "features of the waveforms (Fbank); None: waveform models"),
        BrainOption("wav_augment", None, "training-time waveform Augmenter"),
        BrainOption("fea_augment", None, "training-time feature Augmenter"),
        BrainOption("concat_augment", None, "training: joins utterance pairs and their labels before "
                    "wav_augment (speechbrain_ee.data.concat.ConcatUtterances)"),
        BrainOption("exit_weights", None, "per-exit loss weights: a list, 'uniform' or 'depth' "
                    "(default: all 1, Eq. 2)"),
        BrainOption("distill_weight", 0.0, "weight of the lower exits' self-distillation from the top "
                    "exit (0: off)"),
        BrainOption("distill_temperature", 1.0, "temperature of the self-distillation"),
        BrainOption("distill_blank_threshold", None, "self-distillation skips frames where the top "
                    "exit's blank probability exceeds this (None: keep all)"),
        BrainOption("distill_start_epoch", 1, "first epoch whose training loss has the self-distillation "
                    "term (before it, the term is only logged)"),
        BrainOption("lr_annealing", None, "learning-rate scheduler, step- or epoch-level"),
        BrainOption("lr_annealing_metric", "loss", "validation statistic an epoch-level scheduler reads"),
        BrainOption("epoch_counter", None, "the epoch counter (its limit plans a step schedule's length)"),
        BrainOption("test_beam_size", 0, "CTC prefix beam at test (0: greedy CTC)"),
        BrainOption("avg_checkpoints", 1, "test/export the average of this many best checkpoints"),
        BrainOption("error_rate_computer", ErrorRateStats, "WER statistics factory"),
        BrainOption("cer_computer", lambda: ErrorRateStats(split_tokens=True), "CER statistics factory"),
        BrainOption("train_logger", None, "SpeechBrain train logger (default: the Python log)"),
        BrainOption("output_folder", None, "where the test stage writes per-exit WER files"),
    )
    REQUIRED_HPARAMS = ("tokenizer", "blank_index")
    REQUIRED_MODULES = ("model",)

    def option(self, name):
        """The hparam ``name`` or its declared default (:attr:`OPTIONS`)."""
        return declared_option(self, name)

    # ------------------------------------------------------------------ contract
    def check_contract(self):
        """Fails with the missing key's name: required hparams and modules."""
        for key in self.REQUIRED_HPARAMS:
            if getattr(self.hparams, key, None) is None:
                raise ValueError(f"{type(self).__name__} needs the hparam {key!r}")
        for key in self.REQUIRED_MODULES:
            if key not in self.modules:
                raise ValueError(f"{type(self).__name__} needs the module {key!r}")

    def batch_keys(self, stage):
        """The batch keys this Brain reads in ``stage``."""
        keys = [self.option("signal_key"), self.option("tokens_key")]
        if stage != sb.Stage.TRAIN:
            keys.append(self.option("transcript_key"))
        return keys

    def fit(self, epoch_counter, train_set, valid_set=None, *args, **kwargs):
        """SpeechBrain's ``fit``, after checking the contract and that the
        datasets provide the batch keys (a wrong key fails now, not after
        an epoch)."""
        self.check_contract()
        check_dataset_keys(train_set, self.batch_keys(sb.Stage.TRAIN), "training set")
        if valid_set is not None:
            check_dataset_keys(valid_set, self.batch_keys(sb.Stage.VALID), "validation set")
        return super().fit(epoch_counter, train_set, valid_set, *args, **kwargs)

    def evaluate(self, test_set, *args, **kwargs):
        """SpeechBrain's ``evaluate``, after the same checks as :meth:`fit`."""
        self.check_contract()
        check_dataset_keys(test_set, self.batch_keys(sb.Stage.TEST), "test set")
        return super().evaluate(test_set, *args, **kwargs)

    # ------------------------------------------------------------------ forward
    @property
    def unwrapped_model(self):
        """``modules.model`` without its DDP / DataParallel wrapper: where
        the model's attributes and methods are read."""
        model = self.modules.model
        return model.module if hasattr(model, "module") else model

    def compute_forward(self, batch, stage):
        """Features -> per-exit log-posteriors and relative output lengths."""
        inputs, lengths = self.batch_inputs(batch.to(self.device), stage)
        log_probs, out_lens = self.modules.model(inputs, lengths)
        rel_lens = out_lens.float() / log_probs[0].shape[1]
        return log_probs, rel_lens

    def augmenters(self, stage):
        """The training-time augmenters (waveform, feature) that are set."""
        if stage != sb.Stage.TRAIN:
            return []
        return [a for a in (self.option("wav_augment"), self.option("fea_augment")) if a is not None]

    def batch_inputs(self, batch, stage):
        """Model inputs and their integer lengths (augmented in training)."""
        wavs, wav_lens = getattr(batch, self.option("signal_key"))
        concat = self.option("concat_augment") if stage == sb.Stage.TRAIN else None
        if concat is not None:
            wavs, wav_lens = concat(wavs, wav_lens)
        wav_augment = self.option("wav_augment") if stage == sb.Stage.TRAIN else None
        if wav_augment is not None:
            wavs, wav_lens = wav_augment(wavs, wav_lens)
        return model_inputs(
            wavs, wav_lens,
            compute_features=self.option("compute_features"),
            normalize=getattr(self.modules, "normalize", None),
            feature_augment=self.option("fea_augment") if stage == sb.Stage.TRAIN else None,
        )

    def replicate_labels(self, stage, *labels):
        """Labels repeated as the training augmenters repeated the utterances
        (``Augmenter.replicate_labels``; unchanged outside training)."""
        for augmenter in self.augmenters(stage):
            labels = tuple(augmenter.replicate_labels(label) for label in labels)
        return labels

    def batch_targets(self, batch, stage):
        """``(tokens, token_lens)`` of the batch, joined as ``concat_augment``
        joined the waveforms and replicated for the augmenters."""
        tokens, tokens_lens = getattr(batch, self.option("tokens_key"))
        concat = self.option("concat_augment") if stage == sb.Stage.TRAIN else None
        if concat is not None:
            tokens, tokens_lens = concat.join_labels(tokens, tokens_lens)
        return self.replicate_labels(stage, tokens, tokens_lens)

    def references(self, batch):
        """Reference word lists of the batch (the transcript key)."""
        return [text.split() for text in getattr(batch, self.option("transcript_key"))]

    def compute_objectives(self, predictions, batch, stage):
        """``Σ_i w_i CTC_i`` over the exits (Eq. 2 with the weights of
        :meth:`exit_weights`), plus ``distill_weight · Σ_{i<top} KD_i``
        when ``distill_weight`` > 0 (:meth:`distillation`) in training, from
        epoch ``distill_start_epoch`` on; per-exit WER/CER outside training.
        Elsewhere (dev, test, training epochs before the start) the KD terms
        are only logged (``kd_exit<L>``), so the dev loss of a distilled run is
        the same objective as a plain run's and the two compare."""
        log_probs, rel_lens = predictions
        tokens, tokens_lens = self.batch_targets(batch, stage)
        loss, per_exit = early_exit_ctc_loss(
            log_probs, rel_lens, tokens, tokens_lens, self.hparams.blank_index,
            exit_weights=self.exit_weights(),
        )
        self.record_exit_losses(per_exit)
        distill_weight = self.distill_weight()
        if distill_weight > 0:
            kd_total, kd_per_exit = self.distillation(log_probs, rel_lens)
            if stage == sb.Stage.TRAIN and self.distillation_started():
                loss = loss + distill_weight * kd_total
            self.record_distillation_losses(kd_per_exit)
        if stage != sb.Stage.TRAIN:
            targets = self.references(batch)
            for i, lp in enumerate(log_probs):
                hyps = self.transcribe_exit(lp, rel_lens, stage, i)
                self.wer_metrics[i].append(batch.id, hyps, targets)
                self.cer_metrics[i].append(batch.id, hyps, targets)
        return loss

    def exit_weights(self):
        """The per-exit loss weights: ``exit_weights`` (a list, or the
        scheme ``uniform``/``depth``) resolved against the model's exit
        layers and checked (:func:`~speechbrain_ee.losses.resolve_exit_weights`)."""
        return resolve_exit_weights(self.option("exit_weights"), len(self.exit_layers), self.exit_layers)

    def distill_weight(self):
        """``distill_weight``, checked: a finite number >= 0 (0: no distillation)."""
        return check_number("distill_weight", self.option("distill_weight"), minimum=0)

    def distillation_started(self):
        """Whether the current training epoch (SpeechBrain's ``fit`` passes it
        to :meth:`on_stage_start`) is ``distill_start_epoch`` or later; the
        teacher of an untrained model is its blank-dominated top exit, so a
        later start lets the CTC losses leave the blank stage first."""
        start = check_number("distill_start_epoch", self.option("distill_start_epoch"), minimum=1, integer=True)
        epoch = getattr(self, "stage_epoch", None)
        return epoch is None or epoch >= start

    def distillation(self, log_probs, rel_lens):
        """``(total, per_exit)`` self-distillation of the lower exits from the
        top one (:func:`~speechbrain_ee.losses.exit_distillation_loss` with
        ``distill_temperature`` and ``distill_blank_threshold``)."""
        temperature = self.option("distill_temperature")
        threshold = self.option("distill_blank_threshold")
        blank = self.hparams.blank_index
        check_distillation_options(temperature, blank, threshold, prefix="distill_")
        return exit_distillation_loss(log_probs, rel_lens, temperature, blank, threshold)

    def record_distillation_losses(self, kd_per_exit):
        """Adds a batch's per-exit distillation terms to the stage's running sums."""
        for i, term in enumerate(kd_per_exit):
            self.kd_loss_sums[i] += term.detach().item()
        self.kd_loss_count += 1

    def record_exit_losses(self, per_exit):
        """Adds a batch's per-exit losses to the stage's running sums."""
        for i, exit_loss in enumerate(per_exit):
            self.exit_loss_sums[i] += exit_loss.detach().item()
        self.exit_loss_count += 1

    def transcribe_exit(self, log_probs, rel_lens, stage, exit_index=None, exit_output=None):
        """Word lists of one exit: greedy CTC in validation; at test the
        model's text decoder (:func:`build_text_decoder`)."""
        if stage == sb.Stage.TEST and self.test_decoder is not None:
            out_lens = torch.round(rel_lens * log_probs.shape[1]).long()
            extras = {}
            if getattr(self.test_decoder, "needs_exit_output", False):
                extras = {"exit_output": exit_output, "exit_index": exit_index}
            return [text.split() for text in self.test_decoder(log_probs, out_lens, **extras)]
        return greedy_transcripts(log_probs, rel_lens, self.hparams.blank_index, self.hparams.tokenizer)

    # ------------------------------------------------------------------ hooks
    @property
    def exit_layers(self):
        """Encoder layer of each exit."""
        return list(self.unwrapped_model.exit_layers)

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
        ``avg_checkpoints`` best ones."""
        super().on_evaluate_start(max_key=max_key, min_key=min_key)
        if self.checkpointer is not None:
            self.averaged_checkpoints = load_averaged_model(
                self.checkpointer, self.unwrapped_model, self.option("avg_checkpoints"),
                min_key=min_key, max_key=max_key,
            )

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Steps a step-level learning-rate scheduler after each optimiser step."""
        annealing = self.option("lr_annealing")
        if should_step and annealing is not None and not is_epoch_scheduler(annealing):
            annealing(self.optimizer)

    def on_stage_start(self, stage, epoch=None):
        """Resets the per-exit accumulators; re-plans the learning-rate
        schedule before each training epoch (the epoch counter may have
        lowered its limit to fit its time budget); builds the test decoder."""
        if stage == sb.Stage.TRAIN:
            self.plan_schedule()
        self.stage_epoch = epoch
        n = len(self.exit_layers)
        self.exit_loss_sums = [0.0] * n
        self.exit_loss_count = 0
        self.kd_loss_sums = [0.0] * (n - 1)  # the exits below the top one
        self.kd_loss_count = 0
        if stage != sb.Stage.TRAIN:
            self.wer_metrics = [self.option("error_rate_computer")() for _ in range(n)]
            self.cer_metrics = [self.option("cer_computer")() for _ in range(n)]
        self.test_decoder = None
        if stage == sb.Stage.TEST:
            self.test_decoder = build_text_decoder(
                self.unwrapped_model, self.hparams, self.device, beam_size=self.test_beam_size()
            )
            logger.info("test decoding: %r", self.test_decoder)

    def test_beam_size(self):
        """The test decoding's beam (``test_beam_size``)."""
        return self.option("test_beam_size")

    def exit_stats(self, stage):
        """Per-exit loss, per-exit distillation term (``kd_exit<L>``, when
        distillation is on) and WER/CER outside training of the stage that ended."""
        count = max(1, self.exit_loss_count)
        stats = {}
        kd_count = getattr(self, "kd_loss_count", 0)  # 0: no distillation in this stage
        for i, layer in enumerate(self.exit_layers):
            stats[f"loss_exit{layer}"] = round(self.exit_loss_sums[i] / count, 4)
            if kd_count and i < len(self.kd_loss_sums):
                stats[f"kd_exit{layer}"] = round(self.kd_loss_sums[i] / kd_count, 4)
            if stage != sb.Stage.TRAIN:
                stats[f"WER_exit{layer}"] = round(self.wer_metrics[i].summarize("error_rate"), 3)
                stats[f"CER_exit{layer}"] = round(self.cer_metrics[i].summarize("error_rate"), 3)
        if stage != sb.Stage.TRAIN:
            wers = [stats[f"WER_exit{layer}"] for layer in self.exit_layers]
            stats["WER"] = wers[-1]
            stats["mean_WER"] = round(sum(wers) / len(wers), 3)
        return stats

    def log_stats(self, **kwargs):
        """``train_logger.log_stats`` (on the main process), or the Python log."""
        train_logger = self.option("train_logger")
        if train_logger is not None:
            train_logger.log_stats(**kwargs)
        else:
            logger.info("%s", kwargs)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs per-exit statistics, steps an epoch-level scheduler and
        checkpoints after validation, writes WER files at test."""
        stats = {"loss": stage_loss, **self.exit_stats(stage)}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if stage == sb.Stage.VALID:
            annealing = self.option("lr_annealing")
            if annealing is not None and is_epoch_scheduler(annealing):
                metric = self.option("lr_annealing_metric")
                if metric not in stats:
                    raise ValueError(f"lr_annealing_metric {metric!r} is not a validation statistic "
                                     f"(one of {sorted(stats)})")
                step_epoch_scheduler(annealing, self.optimizer, epoch, stats[metric])
            lr = self.optimizer.param_groups[0]["lr"]
            self.log_stats(stats_meta={"epoch": epoch, "lr": lr},
                           train_stats=getattr(self, "train_stats", None), valid_stats=stats)
            if self.checkpointer is not None:
                self.checkpointer.save_and_keep_only(
                    meta={"mean_WER": stats["mean_WER"], "WER": stats["WER"], "epoch": epoch},
                    min_keys=["mean_WER"],
                    num_to_keep=self.option("avg_checkpoints"),
                )
        elif stage == sb.Stage.TEST:
            counter = self.option("epoch_counter")
            self.log_stats(stats_meta={"Epoch loaded": counter.current if counter else None},
                           test_stats=stats)
            self.test_stats = stats
            if sb.utils.distributed.if_main_process():
                self.write_wer_files()

    def write_wer_files(self):
        """One SpeechBrain WER file per exit plus a JSON summary in ``output_folder``."""
        folder = self.option("output_folder")
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
            "params": sum(p.numel() for p in self.unwrapped_model.parameters()),
            "torch_threads": torch.get_num_threads(),
        }
