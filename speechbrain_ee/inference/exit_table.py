"""Every exit of a test set decoded once (an :class:`ExitTable`), what the
offline selector sweep (:mod:`speechbrain_ee.selection.sweep`) replays."""

import torch

from speechbrain_ee.inference.dynamic import exit_extras
from speechbrain_ee.selection.measures import edit_distance
from speechbrain_ee.selection.selectors import ConfidenceSelector, EntropySelector
from speechbrain_ee.selection.sweep import ExitTable


def decode_exits(model, batches, decode_fn, measurers=()):
    """Runs every exit once and collects what the selectors read.

    Arguments
    ---------
    model : EarlyExitCTC
        Or any model with the ``exit_layers``/``start``/``step`` interface of
        :func:`~speechbrain_ee.inference.dynamic.run_dynamic` (and
        ``exit_output`` for decoders or measures that read the exit's states).
    batches : iterable
        ``(ids, inputs, lengths, references)`` tuples.
    decode_fn : callable
        ``(log_probs, lengths) -> list of str`` (plus the exit's states for
        an attention decoder, see :func:`~speechbrain_ee.inference.dynamic.exit_extras`).
    measurers : iterable of ExitSelector
        Selectors whose :meth:`measure` is cached (one per measure key).

    Returns
    -------
    ExitTable
    """
    exit_layers = list(model.exit_layers)
    last = len(exit_layers) - 1
    table = ExitTable([], [], exit_layers, [], [], [], {m.measure_key: [] for m in measurers})
    with torch.no_grad():
        for ids, inputs, lengths, references in batches:
            texts, values = [], {m.measure_key: [] for m in measurers}
            state = model.start(inputs, lengths)
            for exit_index in range(last + 1):  # the dynamic run's steps, every exit
                state, log_probs = model.step(state, exit_index)
                extras = exit_extras(decode_fn, model, state, exit_index)
                texts.append(decode_fn(log_probs, state.lengths, **extras))
                if exit_index == last:
                    continue
                for m in measurers:
                    extras = exit_extras(m, model, state, exit_index)
                    values[m.measure_key].append(m.measure(log_probs, state.lengths, None, **extras).tolist())
            for row, (utt, ref) in enumerate(zip(ids, references)):
                hyps = [texts[e][row] for e in range(len(exit_layers))]
                table.ids.append(utt)
                table.references.append(ref)
                table.hypotheses.append(hyps)
                table.word_errors.append([edit_distance(ref.split(), h.split()) for h in hyps])
                table.ref_words.append(len(ref.split()))
                for key, per_exit in values.items():
                    table.measures[key].append([v[row] for v in per_exit] + [None])
    return table


def manifest_batches(asr, csv_path, batch_size=16):
    """``(ids, inputs, lengths, references)`` batches of a manifest for
    :func:`decode_exits`, through an :class:`~speechbrain_ee.inference.EarlyExitASR`."""
    from speechbrain.dataio.dataloader import make_dataloader

    from speechbrain_ee.data.pipelines import load_dataset

    dataset = load_dataset(
        csv_path, asr.hparams.tokenizer, sample_rate=asr.hparams.sample_rate,
        min_samples=getattr(asr.hparams, "min_audio_samples", 1), sorting="ascending",
    )
    for batch in make_dataloader(dataset, batch_size=batch_size):
        wavs, wav_lens = batch.sig
        inputs, lengths = asr.encode_inputs(wavs, wav_lens)
        yield batch.id, inputs, lengths, batch.wrd


def decode_manifest(asr, csv_path, batch_size=16, measure_keys=("entropy", "confidence"), topk=10,
                    progress=False):
    """:func:`decode_exits` over a manifest with an ``EarlyExitASR``: its
    decoder gives the transcripts; ``measure_keys`` picks the cached measures
    (``"confidence"`` runs an N-best search of size ``topk`` at every exit)."""
    prototypes = {"entropy": lambda: EntropySelector(0.0),
                  "confidence": lambda: ConfidenceSelector(0.5, topk=topk)}
    unknown = set(measure_keys) - set(prototypes)
    if unknown:
        raise ValueError(f"unknown measure(s) {sorted(unknown)}: choose from {sorted(prototypes)}")
    measurers = [asr.prepare_selector(prototypes[k]()) for k in measure_keys]
    batches = manifest_batches(asr, csv_path, batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, unit="batch")
    return decode_exits(asr.model, batches, asr.decoder, measurers)
