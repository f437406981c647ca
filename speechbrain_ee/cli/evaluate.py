"""Per-exit WER/CER of an exported early-exit model on a manifest.

    sbee evaluate --model pretrained/an4-conformer-ctc-ee --csv test.csv \\
        [--beam-size 10] [--lm-weight 0.3] [--json-out summary.json] \\
        [--output hyps.jsonl] [--output-dir wer_files/] [--skip-bad]

The model decodes as :class:`speechbrain_ee.inference.EarlyExitASR` decodes
it (its text decoder, the encoder run once per batch, every exit decoded:
:meth:`~speechbrain_ee.inference.EarlyExitASR.recognize_every_exit`), so
the table is what the inference API gives. Without decoding flags the model
decodes as exported; ``--beam-size``, ``--lm-weight``, ``--oov-penalty`` and,
for attention models, ``--ctc-weight`` and ``--decoding`` replace the
exported values (to tune them on a dev set). WER/CER come from SpeechBrain's
``ErrorRateStats``; the table has one row per exit.

``--output`` gets each utterance's transcript at every exit as it is decoded
(JSON Lines when the name ends in ``.jsonl``, else TSV); ``--output-dir`` the
SpeechBrain WER file of each exit. An unreadable audio file stops the run
with an error naming its row, unless ``--skip-bad`` (the row is left out and
listed; exit status 1).
"""

import json
import logging
import os
import sys
import time

from speechbrain_ee.cli.arguments import (
    add_csv_argument, add_decoding_arguments, add_json_out_argument, add_model_argument, add_output_argument,
    add_run_arguments, is_attention_model, load_recognizer,
)
from speechbrain_ee.cli.common import command_line, command_main
from speechbrain_ee.cli.outputs import open_output, output_dir, pending_json
from speechbrain_ee.data.manifest import DataPreparationError, read_manifest

logger = logging.getLogger(__name__)


def add_arguments(parser):
    """The flags of ``sbee evaluate``."""
    add_model_argument(parser)
    add_csv_argument(parser)
    add_decoding_arguments(parser)
    add_run_arguments(parser, batch_size=16)
    add_output_argument(parser, "each utterance's transcripts at every exit, written as they come "
                                "(.jsonl: JSON Lines, else TSV)")
    parser.add_argument("--output-dir", default=None, metavar="DIR",
                        help="SpeechBrain WER file of every exit and exit_summary_<csv name>.json")
    add_json_out_argument(parser)
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out (and list) rows whose audio cannot be read instead of stopping")


def sorted_rows(csv_path):
    """The manifest's rows, ascending by ``duration`` as the recipes' test
    loaders order them (SpeechBrain's ``filtered_sorted``: ties keep the file
    order), so that the batches are those of the training run's test."""
    rows = read_manifest(csv_path)
    if "duration" not in rows[0]:
        return rows
    try:
        return sorted(rows, key=lambda row: float(row["duration"]))
    except ValueError as err:
        raise DataPreparationError(f"{csv_path}: a 'duration' is not a number ({err})") from err


def reference_words(rows, csv_path, tokenizer):
    """Each row's reference words (``wrd``). Lowercase references are
    upper-cased (with a warning) when the model's tokens have no lowercase
    letter; a manifest whose references are all empty is an error."""
    pieces = [tokenizer.id_to_piece(i) for i in range(tokenizer.get_piece_size())]
    upper_model = not any(c.islower() for piece in pieces for c in piece if not piece.startswith("<"))
    lowered = [row["ID"] for row in rows if upper_model and any(c.islower() for c in row["wrd"])]
    if lowered:
        logger.warning("%s: %d reference(s) with lowercase letters (e.g. %s) upper-cased to the model's "
                       "letters", csv_path, len(lowered), lowered[0])
    words = {row["ID"]: (row["wrd"].upper() if upper_model else row["wrd"]).split() for row in rows}
    empty = [utt for utt, ref in words.items() if not ref]
    if len(empty) == len(words):
        raise DataPreparationError(f"{csv_path}: every 'wrd' is empty: no reference to score against")
    if empty:
        logger.warning("%s: %d empty reference(s) (e.g. %s): every word decoded there is an insertion",
                       csv_path, len(empty), empty[0])
    return words


def read_batches(asr, rows, csv_path, batch_size, skip_bad=False, skipped=None):
    """``(rows, wavs, wav_lens)`` batches (padded as SpeechBrain pads them) of
    the rows whose audio reads; an unreadable file is an error naming its row,
    or with ``skip_bad`` is appended to ``skipped`` (``{"ID", "wav", "error"}``)."""
    from speechbrain.utils.data_utils import batch_pad_right

    from speechbrain_ee.data.audio import AudioError

    for start in range(0, len(rows), batch_size):
        good, wavs = [], []
        for row in rows[start : start + batch_size]:
            try:
                wavs.append(asr.load_file(row["wav"]))
                good.append(row)
            except AudioError as err:
                if not skip_bad:
                    raise DataPreparationError(
                        f"{csv_path}: row {row['ID']}: {err} (--skip-bad leaves such rows out)") from err
                logger.warning("skipping row %s: %s", row["ID"], err)
                skipped.append({"ID": row["ID"], "wav": row["wav"], "error": str(err)})
        if good:
            padded, wav_lens = batch_pad_right(wavs)
            yield good, padded, wav_lens


class HypothesisWriter:
    """Writes each utterance's transcripts at every exit to an open handle
    as they come (TSV with a header, or JSON Lines)."""

    def __init__(self, handle, exit_layers, jsonl=False):
        self.handle = handle
        self.exit_layers = list(exit_layers)
        self.jsonl = jsonl
        if not jsonl:
            handle.write("\t".join(["ID", "wrd", *(f"exit{layer}" for layer in self.exit_layers)]) + "\n")

    def write(self, utt_id, reference, hypotheses):
        """One utterance: its reference and one transcript per exit."""
        if self.jsonl:
            line = json.dumps({"ID": utt_id, "wrd": reference,
                               "hyp": {str(layer): h for layer, h in zip(self.exit_layers, hypotheses)}})
        else:
            line = "\t".join([utt_id, reference, *hypotheses])
        self.handle.write(line + "\n")


def evaluate(asr, csv_path, batch_size=16, skip_bad=False, hypotheses=None, progress=False):
    """Per-exit WER/CER of a loaded :class:`~speechbrain_ee.inference.EarlyExitASR` on a manifest.

    Arguments
    ---------
    asr : EarlyExitASR
        The model, with the decoder to score.
    csv_path : str
        Manifest with ``ID``, ``wav``, ``wrd`` (and ``duration``: batches by length).
    batch_size : int
        Utterances per batch.
    skip_bad : bool
        Leave out rows whose audio cannot be read (else: an error naming the row).
    hypotheses : file, optional
        Each utterance's transcripts are written there as they come (:class:`HypothesisWriter`).
    progress : bool
        A progress bar on stderr.

    Returns
    -------
    summary : dict
        ``exit_layers``, ``wer``, ``cer`` (percent, exit order), ``params``,
        ``torch_threads``, ``csv``, ``decoder``, ``utterances``, ``skipped``
        (rows left out).
    stats : tuple of list
        SpeechBrain ``ErrorRateStats`` of the WER and of the CER of each exit.
    """
    import torch
    from speechbrain.utils.metric_stats import ErrorRateStats

    rows = sorted_rows(csv_path)
    references = reference_words(rows, csv_path, asr.hparams.tokenizer)
    exit_layers = asr.exit_layers
    wer_stats = [ErrorRateStats() for _ in exit_layers]
    cer_stats = [ErrorRateStats(split_tokens=True) for _ in exit_layers]
    writer = None
    if hypotheses is not None:
        writer = HypothesisWriter(hypotheses, exit_layers, jsonl=getattr(hypotheses, "name", "").endswith(".jsonl"))
    skipped = []
    batches = read_batches(asr, rows, csv_path, batch_size, skip_bad, skipped)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, total=-(-len(rows) // batch_size), unit="batch")
    scored = 0
    for batch_rows, wavs, wav_lens in batches:
        ids = [row["ID"] for row in batch_rows]
        targets = [references[utt] for utt in ids]
        per_exit = asr.recognize_every_exit(wavs, wav_lens)
        for exit_index, texts in enumerate(per_exit):
            words = [text.split() for text in texts]
            wer_stats[exit_index].append(ids, words, targets)
            cer_stats[exit_index].append(ids, words, targets)
        if writer is not None:
            for row_index, row in enumerate(batch_rows):
                writer.write(row["ID"], " ".join(targets[row_index]), [texts[row_index] for texts in per_exit])
        scored += len(ids)
    if not scored:
        raise DataPreparationError(f"{csv_path}: no row could be read ({len(skipped)} skipped)")
    if not any(references[row["ID"]] for row in rows if row["ID"] not in {s["ID"] for s in skipped}):
        raise DataPreparationError(f"{csv_path}: every readable row has an empty 'wrd': nothing to score")
    summary = {
        "exit_layers": exit_layers,
        "wer": [round(m.summarize("error_rate"), 3) for m in wer_stats],
        "cer": [round(m.summarize("error_rate"), 3) for m in cer_stats],
        "params": sum(p.numel() for p in asr.model.parameters()),
        "torch_threads": torch.get_num_threads(),
        "csv": os.path.abspath(csv_path),
        "decoder": repr(asr.decoder),
        "utterances": scored,
        "skipped": skipped,
    }
    return summary, (wer_stats, cer_stats)


def write_wer_files(folder, name, exit_layers, stats, summary):
    """SpeechBrain's WER file of every exit (``wer_<name>_exit<layer>.txt``)
    and ``exit_summary_<name>.json``, as the recipes' test stage writes them."""
    os.makedirs(folder, exist_ok=True)
    for layer, metric in zip(exit_layers, stats):
        with open(os.path.join(folder, f"wer_{name}_exit{layer}.txt"), "w") as handle:
            metric.write_stats(handle)
    with open(os.path.join(folder, f"exit_summary_{name}.json"), "w") as handle:
        json.dump(summary, handle, indent=2)


def run(args, argv=None):
    """``sbee evaluate``: checks the outputs, loads the model, scores, reports."""
    from speechbrain_ee.plotting import format_exit_table

    start = time.time()
    is_attention_model(args.model)  # a wrong model directory or a missing or malformed manifest
    read_manifest(args.csv)  # fails before the outputs are created and the model loads
    if args.output_dir:
        output_dir(args.output_dir)
    with pending_json(args.json_out) as summary_file:
        hypotheses = open_output(args.output) if args.output else None
        try:
            asr = load_recognizer(args)
            print(f"decoding: {asr.decoder!r}", file=sys.stderr)
            summary, (wer_stats, _) = evaluate(asr, args.csv, args.batch_size, args.skip_bad, hypotheses,
                                               progress=sys.stderr.isatty())
        finally:
            if hypotheses is not None:
                hypotheses.close()
        summary.update(wall_s=round(time.time() - start, 1), command=command_line("evaluate", argv))
        if args.output_dir:
            name = os.path.splitext(os.path.basename(args.csv))[0]
            write_wer_files(args.output_dir, name, summary["exit_layers"], wer_stats, summary)
        if summary_file is not None:
            summary_file.write_text(json.dumps(summary, indent=2) + "\n")
    print(format_exit_table(summary["exit_layers"], summary["wer"], summary["cer"]))
    for row in summary["skipped"]:
        print(f"skipped {row['ID']}: {row['error']}", file=sys.stderr)
    if summary["skipped"]:
        print(f"{len(summary['skipped'])} of {summary['utterances'] + len(summary['skipped'])} rows skipped",
              file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    """Entry point of ``sbee evaluate`` (and ``sbee-evaluate``); returns the exit status."""
    return command_main("evaluate", __doc__, add_arguments, lambda args: run(args, argv))(argv)


if __name__ == "__main__":
    sys.exit(main())
