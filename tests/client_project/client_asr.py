#!/usr/bin/env python3
"""A small SpeechBrain ASR project written the way SpeechBrain's template
(``templates/speech_recognition/ASR``) is, that uses ``speechbrain_ee``:

* ``--brain=client`` (the default): the project's own Brain
  (:class:`ClientASR`) with the package's early-exit model and its CTC loss
  (SpeechBrain's call signature, relative lengths everywhere);
* ``--brain=package``: the package's ``EarlyExitCTCBrain``, configured for
  the project's pipeline keys (``words``), its augmenter
  (``Augmenter(concat_original=True)``) and its scheduler (``NewBobScheduler``).

    python client_asr.py hparams/client.yaml --data_folder=DIR --output_folder=OUT
    torchrun --nproc_per_node=2 client_asr.py hparams/client.yaml --brain=package ... --distributed_backend=gloo

``DIR`` holds ``train.csv``, ``valid.csv``, ``test.csv`` (ID, duration, wav,
words) and ``tokenizer.csv`` (the tokenizer's text). Each process writes
``rank<r>.json`` in the output folder: the test WER per exit and a
fingerprint of the trained weights.
"""

import json
import os
import sys

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main

from speechbrain_ee.brains.ctc import EarlyExitCTCBrain
from speechbrain_ee.inference import EarlyExitASR
from speechbrain_ee.recipe import export_model


class ClientASR(sb.Brain):
    """The project's own Brain: any SpeechBrain user's CTC Brain, with the
    early-exit model in place of their encoder and the early-exit CTC loss
    in place of ``ctc_loss``."""

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        if stage == sb.Stage.TRAIN and hasattr(self.hparams, "wav_augment"):
            wavs, wav_lens = self.hparams.wav_augment(wavs, wav_lens)
        feats = self.hparams.compute_features(wavs)
        feats = self.modules.normalize(feats, wav_lens)
        log_probs, out_lens = self.modules.model(feats, wav_lens)  # relative lengths in and out
        return log_probs, out_lens

    def compute_objectives(self, predictions, batch, stage):
        log_probs, out_lens = predictions
        tokens, tokens_lens = batch.tokens
        if stage == sb.Stage.TRAIN and hasattr(self.hparams, "wav_augment"):
            tokens = self.hparams.wav_augment.replicate_labels(tokens)
            tokens_lens = self.hparams.wav_augment.replicate_labels(tokens_lens)
        loss = self.hparams.ctc_cost(log_probs, tokens, out_lens, tokens_lens)
        if stage != sb.Stage.TRAIN:
            for exit_index, exit_log_probs in enumerate(log_probs):
                sequences = sb.decoders.ctc_greedy_decode(
                    exit_log_probs, out_lens, blank_id=self.hparams.blank_index
                )
                words = [self.hparams.tokenizer.sp.decode_ids(seq).split() for seq in sequences]
                self.wer_metrics[exit_index].append(batch.id, words, [w.split() for w in batch.words])
        return loss

    def on_stage_start(self, stage, epoch=None):
        if stage != sb.Stage.TRAIN:
            self.wer_metrics = [self.hparams.error_rate_computer() for _ in self.hparams.exit_layers]

    def on_stage_end(self, stage, stage_loss, epoch=None):
        stats = {"loss": stage_loss}
        if stage != sb.Stage.TRAIN:
            stats["wer"] = [m.summarize("error_rate") for m in self.wer_metrics]
        if stage == sb.Stage.VALID:
            old_lr, new_lr = self.hparams.lr_annealing(stage_loss)
            sb.nnet.schedulers.update_learning_rate(self.optimizer, new_lr)
            self.checkpointer.save_and_keep_only(meta={"loss": stage_loss}, min_keys=["loss"])
        elif stage == sb.Stage.TEST:
            self.test_stats = stats


def dataio_prepare(hparams, tokenizer):
    """The project's data pipeline: ``sig``, ``words`` and ``tokens``."""
    folder = hparams["data_folder"]
    datasets = {
        name: sb.dataio.dataset.DynamicItemDataset.from_csv(
            csv_path=os.path.join(folder, f"{name}.csv"), replacements={"data_root": folder}
        ).filtered_sorted(sort_key="duration")
        for name in ("train", "valid", "test")
    }

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return sb.dataio.dataio.read_audio(wav)

    @sb.utils.data_pipeline.takes("words")
    @sb.utils.data_pipeline.provides("words", "tokens")
    def text_pipeline(words):
        yield words
        yield torch.LongTensor(tokenizer.sp.encode_as_ids(words))

    sb.dataio.dataset.add_dynamic_item(list(datasets.values()), audio_pipeline)
    sb.dataio.dataset.add_dynamic_item(list(datasets.values()), text_pipeline)
    sb.dataio.dataset.set_output_keys(list(datasets.values()), ["id", "sig", "words", "tokens"])
    return datasets


def weights_fingerprint(model):
    """Sum and sum of squares of every parameter (float64)."""
    model = getattr(model, "module", model)
    values = torch.cat([p.detach().double().flatten() for p in model.parameters()])
    return [float(values.sum()), float((values ** 2).sum())]


def main(argv=None):
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:] if argv is None else argv)
    sb.utils.distributed.ddp_init_group(run_opts)
    with open(hparams_file) as handle:
        hparams = load_hyperpyyaml(handle, overrides)
    sb.create_experiment_directory(hparams["output_folder"], hyperparams_to_save=hparams_file,
                                   overrides=overrides)
    run_on_main(hparams["tokenizer_trainer"])
    tokenizer = hparams["tokenizer_trainer"]()
    own = hparams["brain"] == "client"
    hparams["tokenizer"] = tokenizer if own else tokenizer.sp
    datasets = dataio_prepare(hparams, tokenizer)
    brain_class = ClientASR if own else EarlyExitCTCBrain
    brain = brain_class(
        modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
        run_opts=run_opts, checkpointer=hparams["checkpointer"],
    )
    brain.fit(hparams["epoch_counter"], datasets["train"], datasets["valid"],
              train_loader_kwargs=hparams["dataloader_options"],
              valid_loader_kwargs=hparams["dataloader_options"])
    brain.evaluate(datasets["test"], min_key="loss" if own else "mean_WER",
                   test_loader_kwargs=hparams["dataloader_options"])
    if own:
        wer = brain.test_stats["wer"]
    else:
        wer = [brain.test_stats[f"WER_exit{layer}"] for layer in brain.exit_layers]
    rank = int(os.environ.get("RANK", 0))
    result = {"rank": rank, "wer": wer, "weights": weights_fingerprint(brain.modules.model),
              "lr": brain.optimizer.param_groups[0]["lr"]}
    if sb.utils.distributed.if_main_process():
        result["exported"] = export_and_transcribe(hparams, brain, tokenizer, datasets["test"])
    with open(os.path.join(hparams["output_folder"], f"rank{rank}.json"), "w") as handle:
        json.dump(result, handle)
    return brain


def export_and_transcribe(hparams, brain, tokenizer, test_set):
    """Exports the trained model for ``EarlyExitASR`` and transcribes the
    first test utterance with it at every exit (greedy, as the test stage)."""
    model = getattr(brain.modules.model, "module", brain.modules.model)
    folder = export_model(
        os.path.join(hparams["output_folder"], "exported"), model,
        os.path.join(hparams["save_folder"], "tokenizer", f"{hparams['vocab_size']}_char.model"),
        hparams["export_arch_file"], arch=hparams["export_arch"], normalize=hparams["normalize"],
    )
    asr = EarlyExitASR.from_hparams(folder, savedir=os.path.join(hparams["output_folder"], "asr"))
    wav = test_set.data[test_set.data_ids[0]]["wav"]
    with torch.no_grad():
        model.eval()
        feats = hparams["normalize"](hparams["compute_features"](sb.dataio.dataio.read_audio(wav)[None]),
                                     torch.ones(1))
        log_probs, lens = model(feats, torch.ones(1))
    here = [tokenizer.sp.decode_ids(seq) for seq in
            (sb.decoders.ctc_greedy_decode(lp, lens, blank_id=hparams["blank_index"])[0] for lp in log_probs)]
    return {"exported": [asr.transcribe_file(wav, exit=i) for i in range(len(log_probs))], "in_project": here}


if __name__ == "__main__":
    main()
