"""Brain for early-exit attention encoder-decoder models (joint CTC/attention)."""

import speechbrain as sb
import torch
from speechbrain.utils.Accuracy import AccuracyStats

from speechbrain_ee.brains.ctc import EarlyExitCTCBrain
from speechbrain_ee.inference.decoders import attention_decoder
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

    Extra hparams: ``bos_index``, ``eos_index``, ``ctc_weight`` (training,
    default 0.3), ``label_smoothing`` (default 0.1), ``test_search`` (a
    partial of ``S2STransformerBeamSearcher``), ``ctc_weight_decode``
    (default 0.4), optional ``lm_scorer`` (``TransformerLMScorer``) and
    ``lm_weight``, optional ``lexicon_file`` and ``oov_penalty`` (the N-best
    lexicon penalty, see :func:`speechbrain_ee.decoding.nbest_rescorer`),
    optional ``aed_decoding`` (``"joint"``, the default, or ``"rescoring"``:
    attention rescoring of the CTC prefix beam, see
    :func:`speechbrain_ee.inference.decoders.attention_decoder`), optional
    ``decoder_exits_per_step`` (k: in each training step only k exits, drawn
    uniformly, run their decoders; their CE is scaled by n/k so the loss
    stays an unbiased estimate of Eq. 2, see
    :func:`~speechbrain_ee.losses.early_exit_joint_loss`; every exit's CTC
    term is always computed, and validation/test run every decoder; under
    DDP the skipped decoders have no gradient in that step, so run with
    SpeechBrain's ``--find_unused_parameters``).
    The blank (``blank_index``) is the last class of both heads.
    """

    def compute_forward(self, batch, stage):
        """Per-exit CTC and decoder log-posteriors, exit outputs, relative lengths."""
        batch = batch.to(self.device)
        inputs, lengths = self.batch_inputs(batch, stage)
        tokens_bos, _ = batch.tokens_bos
        ctc, seq, out_lens, enc_outs = self.modules.model.forward_joint(
            inputs, lengths, tokens_bos, return_states=True,
            decoder_exits=self.sample_decoder_exits() if stage == sb.Stage.TRAIN else None,
        )
        rel_lens = out_lens.float() / ctc[0].shape[1]
        return ctc, seq, enc_outs, rel_lens

    def sample_decoder_exits(self):
        """Exit indices whose decoders run in this training step: all (None)
        unless ``decoder_exits_per_step`` is k < number of exits, then k drawn
        uniformly without replacement (torch's global generator, so seeded
        runs repeat)."""
        count = getattr(self.hparams, "decoder_exits_per_step", None)
        num_exits = len(self.exit_layers)
        if count is None or count == num_exits:
            return None
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= num_exits:
            raise ValueError(f"decoder_exits_per_step must be an integer in 1..{num_exits} (or null), got {count!r}")
        return sorted(torch.randperm(num_exits)[:count].tolist())

    def compute_objectives(self, predictions, batch, stage):
        """Joint loss summed over exits; per-exit WER/CER/accuracy outside training."""
        ctc, seq, enc_outs, rel_lens = predictions
        tokens, tokens_lens = batch.tokens
        tokens_eos, tokens_eos_lens = batch.tokens_eos
        loss, per_exit = early_exit_joint_loss(
            ctc, seq, rel_lens, tokens, tokens_lens, tokens_eos, tokens_eos_lens,
            blank_index=self.hparams.blank_index, pad_index=self.hparams.bos_index,
            ctc_weight=getattr(self.hparams, "ctc_weight", 0.3),
            label_smoothing=getattr(self.hparams, "label_smoothing", 0.1),
            exit_weights=getattr(self.hparams, "exit_weights", None),
        )
        self.record_exit_losses(per_exit)
        if stage != sb.Stage.TRAIN:
            targets = [wrd.split() for wrd in batch.wrd]
            for i in range(len(ctc)):
                self.acc_metrics[i].append(seq[i], tokens_eos, tokens_eos_lens)
                if self.test_decoder is not None:  # the decoding EarlyExitASR does
                    out_lens = torch.round(rel_lens * ctc[i].shape[1]).long()
                    hyps = [h.split() for h in self.test_decoder(ctc[i], out_lens, enc_outs[i], i)]
                else:
                    hyps = self.transcribe_exit(ctc[i], rel_lens, sb.Stage.VALID)
                self.wer_metrics[i].append(batch.id, hyps, targets)
                self.cer_metrics[i].append(batch.id, hyps, targets)
        return loss

    def on_stage_start(self, stage, epoch=None):
        """Per-exit accumulators; at test, one joint beam searcher per exit."""
        super().on_stage_start(stage, epoch)
        self.acc_metrics = [AccuracyStats() for _ in self.exit_layers]
        self.test_decoder = None
        if stage == sb.Stage.TEST and hasattr(self.hparams, "test_search"):
            self.test_decoder = attention_decoder(
                self.modules.model, self.hparams, self.hparams.test_search,
                ctc_weight=getattr(self.hparams, "ctc_weight_decode", 0.4), device=self.device,
            )

    def exit_stats(self, stage):
        """The CTC brain's statistics plus the decoder accuracy of each exit."""
        stats = super().exit_stats(stage)
        if stage != sb.Stage.TRAIN:
            for layer, metric in zip(self.exit_layers, self.acc_metrics):
                stats[f"ACC_exit{layer}"] = round(metric.summarize(), 4)
        return stats
