"""SpeechBrain datasets, dynamic items and data loaders for the recipes."""

import logging

import speechbrain as sb
import torch
from speechbrain.dataio.sampler import DynamicBatchSampler

from speechbrain_ee.data.audio import load_audio, load_audio_segment
from speechbrain_ee.data.manifest import SEGMENT_FIELDS, check_transcripts, normalize_transcript, read_manifest

logger = logging.getLogger(__name__)


def audio_pipeline(sample_rate, min_samples):
    """Dynamic item ``wav -> sig`` reading with :func:`load_audio`."""

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def pipeline(wav):
        return load_audio(wav, sample_rate, min_samples)

    return pipeline


def segment_audio_pipeline(sample_rate, min_samples):
    """Dynamic item ``wav, start, stop -> sig``: a segment (seconds) of a long
    recording, read with :func:`load_audio_segment`."""

    @sb.utils.data_pipeline.takes("wav", "start", "stop")
    @sb.utils.data_pipeline.provides("sig")
    def pipeline(wav, start, stop):
        return load_audio_segment(wav, start, stop, sample_rate, min_samples)

    return pipeline


def tokenizer_case(tokenizer):
    """``"upper"`` when the tokenizer's pieces have upper-case letters and no
    lower-case ones, ``"lower"`` for the opposite, else None (mixed: keep
    the text as it is).

    Example
    -------
    >>> class Pieces:
    ...     def get_piece_size(self): return 3
    ...     def id_to_piece(self, i): return ["<unk>", "\u2581A", "B"][i]
    >>> tokenizer_case(Pieces())
    'upper'
    """
    pieces = "".join(tokenizer.id_to_piece(i) for i in range(tokenizer.get_piece_size()))
    pieces = pieces.replace("<unk>", "").replace("<s>", "").replace("</s>", "")
    upper = any(c.isupper() for c in pieces)
    lower = any(c.islower() for c in pieces)
    if upper != lower:
        return "upper" if upper else "lower"
    return None


def text_pipeline(tokenizer):
    """Dynamic item ``wrd -> wrd, tokens_list, tokens`` (no BOS/EOS: CTC targets)."""

    @sb.utils.data_pipeline.takes("wrd")
    @sb.utils.data_pipeline.provides("wrd", "tokens_list", "tokens")
    def pipeline(wrd):
        yield wrd
        tokens_list = tokenizer.encode_as_ids(wrd)
        yield tokens_list
        yield torch.LongTensor(tokens_list)

    return pipeline


def seq2seq_text_pipeline(bos_index, eos_index):
    """Dynamic item ``tokens_list -> tokens_bos, tokens_eos`` (decoder input
    and target of attention models).

    Example
    -------
    >>> pipeline = seq2seq_text_pipeline(1, 2)
    >>> [t.tolist() for t in pipeline.func([5, 6])]
    [[1, 5, 6], [5, 6, 2]]
    """

    @sb.utils.data_pipeline.takes("tokens_list")
    @sb.utils.data_pipeline.provides("tokens_bos", "tokens_eos")
    def pipeline(tokens_list):
        yield torch.LongTensor([bos_index] + tokens_list)
        yield torch.LongTensor(tokens_list + [eos_index])

    return pipeline


def load_dataset(csv_path, tokenizer, sample_rate=16000, min_samples=400, sorting=None,
                 bos_index=None, eos_index=None, text_case="auto"):
    """A :class:`DynamicItemDataset` with ``id, sig, wrd, tokens`` outputs.

    Arguments
    ---------
    csv_path : str
        Manifest with ``ID,duration,wav,spk_id,wrd`` columns (and
        ``start,stop`` for segments of long recordings).
    tokenizer : sentencepiece.SentencePieceProcessor
        Encodes the transcripts.
    sample_rate : int
        Audio is resampled to this rate.
    min_samples : int
        Shorter audio raises an error naming the file.
    sorting : str, optional
        ``"ascending"`` or ``"descending"`` by duration, ``"random"``/None to keep the order.
    bos_index, eos_index : int, optional
        Given both, the dataset also outputs ``tokens_bos`` and ``tokens_eos``
        (attention-decoder models).
    text_case : str, optional
        Transcripts are normalised by
        :func:`~speechbrain_ee.data.manifest.normalize_transcript` to this
        case (``"auto"``: the tokenizer's, :func:`tokenizer_case`); an empty
        one is an error naming the manifest and the row.
    """
    rows = read_manifest(csv_path)  # clear error for a missing file or missing columns
    check_transcripts(rows, csv_path)  # empty wrd: clear error naming the row
    segments = all(field in rows[0] for field in SEGMENT_FIELDS)
    del rows
    data = sb.dataio.dataset.DynamicItemDataset.from_csv(csv_path=csv_path)
    case = tokenizer_case(tokenizer) if text_case == "auto" else text_case
    for row in data.data.values():
        row["wrd"] = normalize_transcript(row["wrd"], case)
    if sorting in ("ascending", "descending"):
        data = data.filtered_sorted(sort_key="duration", reverse=sorting == "descending")
    elif sorting not in (None, "random"):
        raise ValueError(f"sorting must be 'ascending', 'descending', 'random' or None, got {sorting!r}")
    reader = segment_audio_pipeline if segments else audio_pipeline
    data.add_dynamic_item(reader(sample_rate, min_samples))
    data.add_dynamic_item(text_pipeline(tokenizer))
    keys = ["id", "sig", "wrd", "tokens"]
    if (bos_index is None) != (eos_index is None):
        raise ValueError("give both bos_index and eos_index, or neither")
    if bos_index is not None:
        data.add_dynamic_item(seq2seq_text_pipeline(bos_index, eos_index))
        keys += ["tokens_bos", "tokens_eos"]
    data.set_output_keys(keys)
    return data


def train_loader_kwargs(dataset, hparams):
    """Data-loader options for training: a :class:`DynamicBatchSampler` when
    ``dynamic_batching`` is set (batches of at most ``max_batch_length``
    seconds), else ``train_dataloader_opts`` as they are."""
    opts = dict(hparams.get("train_dataloader_opts", {}))
    if hparams.get("dynamic_batching", False):
        sampler = DynamicBatchSampler(
            dataset,
            length_func=lambda x: float(x["duration"]),
            **hparams["dynamic_batch_sampler"],
        )
        opts = {"batch_sampler": sampler, "num_workers": opts.get("num_workers", 0)}
    return opts
