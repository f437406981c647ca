"""Brain for early-exit attention encoder-decoder models (joint CTC/attention)."""

import speechbrain as sb
import torch
from speechbrain.utils.Accuracy import AccuracyStats

from speechbrain_ee.brains.contract import BrainOption
from speechbrain_ee.brains.ctc import EarlyExitCTCBrain
from speechbrain_ee.checks import check_number
from speechbrain_ee.losses import early_exit_joint_loss


class EarlyExitAEDBrain(EarlyExitCTCBrain):
    """Trains a multi-exit :class:`~speechbrain_ee.nnet.aed_model.EarlyExitAED`
    with Σ_exits (ctc_weight·CTC + (1 − ctc_weight)·CE) and evaluates every
    exit; the per-exit bookkeeping, logging, checkpointing and WER files are
    those of :class:`EarlyExitCTCBrain`.

    Validation scores each exit by greedy CTC (cheap; the checkpoint
    criterion) and by the decoder's teacher-forced token accuracy
    (``ACC_exit<L>``); the test decodes each exit with the joint
    CTC/attention beam search (plus the LM when one is given).

    Contract: that of :class:`EarlyExitCTCBrain`, plus the batch keys
    ``tokens_bos_key`` (default ``tokens_bos``) and ``tokens_eos_key``
    (``tokens_eos``), the required hparams ``bos_index`` and ``eos_index``,
    and at test ``test_search`` (a partial of ``S2STransformerBeamSearcher``)
    and ``ctc_weight_decode`` (no default: see
    :func:`~speechbrain_ee.inference.decoders.build_text_decoder`), with the
    optional ``lm_scorer``/``lm_weight``, ``lexicon_file``/``oov_penalty``
    and ``aed_decoding`` (``"joint"``, the default, or ``"rescoring"``).
    The options of :attr:`OPTIONS` add ``ctc_weight`` (training, 0.3),
    ``label_smoothing`` (0.1) and ``decoder_exits_per_step`` (k: in each training step only k exits, drawn
    uniformly, run their decoders; their CE is scaled by n/k so the loss
    stays an unbiased estimate of Eq. 2, see
    :func:`~speechbrain_ee.losses.early_exit_joint_loss`; every exit's CTC
    term is always computed, and validation/test run every decoder; under
    DDP the skipped decoders have no gradient in that step, so run with
    SpeechBrain's ``--find_unused_parameters``).
    The blank (``blank_index``) is the last class of both heads.

    Loss weights: ``exit_weights`` (a list, ``uniform`` or ``depth``) is
    resolved and checked as in the CTC Brain (:meth:`EarlyExitCTCBrain.exit_weights`)
    and weighs each exit's joint loss. Self-distillation (``distill_weight``
    and the other ``distill_*`` options) is for the CTC Brain only: this
    Brain refuses ``distill_weight`` > 0 when ``fit`` starts rather than
    ignore it.
    """

    OPTIONS = (
        BrainOption("tokens_bos_key", "tokens_bos", "batch key of the BOS-prefixed decoder inputs"),
        BrainOption("tokens_eos_key", "tokens_eos", "batch key of the EOS-suffixed decoder targets"),
        BrainOption("ctc_weight", 0.3, "training: CTC weight of each exit's joint loss"),
        BrainOption("label_smoothing", 0.1, "training: label smoothing of the decoders' CE"),
        BrainOption("decoder_exits_per_step", None, "training: decoders run per step (None: all)"),
        BrainOption("test_beam_size", None, "beam of the test search (None: the test_search's own)"),
    )
    REQUIRED_HPARAMS = EarlyExitCTCBrain.REQUIRED_HPARAMS + ("bos_index", "eos_index")

    def check_contract(self):
        """The CTC Brain's checks; ``concat_augment`` and ``distill_weight``
        > 0 are refused (the decoder inputs and targets are not joined; no
        self-distillation of attention exits)."""
        super().check_contract()
        if self.option("concat_augment") is not None:
            raise ValueError("concat_augment: the AED Brain does not join its decoder inputs/targets "
                             "(use it with EarlyExitCTCBrain)")
        if self.distill_weight() > 0:
            raise ValueError(f"distill_weight {self.distill_weight()}: self-distillation is for the CTC Brain "
                             f"only; {type(self).__name__} does not distil (set distill_weight: 0)")

    def batch_keys(self, stage):
        """The CTC Brain's keys plus the decoder's inputs and targets."""
        return super().batch_keys(stage) + [self.option("tokens_bos_key"), self.option("tokens_eos_key")]

    def compute_forward(self, batch, stage):
        """Per-exit CTC and decoder log-posteriors, exit outputs, relative lengths."""
        batch = batch.to(self.device)
        inputs, lengths = self.batch_inputs(batch, stage)
        tokens_bos, tokens_bos_lens = getattr(batch, self.option("tokens_bos_key"))
        tokens_bos, _ = self.replicate_labels(stage, tokens_bos, tokens_bos_lens)
        ctc, seq, out_lens, enc_outs = self.modules.model(  # through the DDP wrapper, if any
            inputs, lengths, tokens_bos, return_states=True,
            decoder_exits=self.sample_decoder_exits() if stage == sb.Stage.TRAIN else None,
        )
        rel_lens = out_lens.float() / ctc[0].shape[1]
        return ctc, seq, enc_outs, rel_lens

    def sample_decoder_exits(self):
        """Exit indices whose decoders run in this training step
        (:func:`sample_decoder_exits` of ``decoder_exits_per_step``)."""
        return sample_decoder_exits(self.option("decoder_exits_per_step"), len(self.exit_layers))

    def compute_objectives(self, predictions, batch, stage):
        """Joint loss summed over exits; per-exit WER/CER/accuracy outside training."""
        ctc, seq, enc_outs, rel_lens = predictions
        tokens, tokens_lens = self.batch_targets(batch, stage)
        tokens_eos, tokens_eos_lens = getattr(batch, self.option("tokens_eos_key"))
        tokens_eos, tokens_eos_lens = self.replicate_labels(stage, tokens_eos, tokens_eos_lens)
        loss, per_exit = early_exit_joint_loss(
            ctc, seq, rel_lens, tokens, tokens_lens, tokens_eos, tokens_eos_lens,
            blank_index=self.hparams.blank_index, pad_index=self.hparams.bos_index,
            ctc_weight=self.option("ctc_weight"),
            label_smoothing=self.option("label_smoothing"),
            exit_weights=self.exit_weights(),
        )
        self.record_exit_losses(per_exit)
        if stage != sb.Stage.TRAIN:
            targets = self.references(batch)
            for i in range(len(ctc)):
                self.acc_metrics[i].append(seq[i], tokens_eos, tokens_eos_lens)
                hyps = self.transcribe_exit(ctc[i], rel_lens, stage, i, enc_outs[i])
                self.wer_metrics[i].append(batch.id, hyps, targets)
                self.cer_metrics[i].append(batch.id, hyps, targets)
        return loss

    def on_stage_start(self, stage, epoch=None):
        """The CTC Brain's accumulators (and test decoder: the exit's joint
        CTC/attention search) plus the decoder accuracy of each exit."""
        super().on_stage_start(stage, epoch)
        self.acc_metrics = [AccuracyStats() for _ in self.exit_layers]

    def exit_stats(self, stage):
        """The CTC brain's statistics plus the decoder accuracy of each exit."""
        stats = super().exit_stats(stage)
        if stage != sb.Stage.TRAIN:
            for layer, metric in zip(self.exit_layers, self.acc_metrics):
                stats[f"ACC_exit{layer}"] = round(metric.summarize(), 4)
        return stats


def sample_decoder_exits(count, num_exits):
    """Exit indices whose decoders run in a training step: all (None) unless
    ``count`` (``decoder_exits_per_step``) is k < ``num_exits``, then k drawn
    uniformly without replacement (torch's global generator, so seeded runs
    repeat).

    Example
    -------
    >>> _ = torch.manual_seed(0)
    >>> sample_decoder_exits(None, 6), len(sample_decoder_exits(3, 6))
    (None, 3)
    """
    if count is None or count == num_exits:
        return None
    check_number("decoder_exits_per_step", count, minimum=1, maximum=num_exits, integer=True)
    return sorted(torch.randperm(num_exits)[:count].tolist())
