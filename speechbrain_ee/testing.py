"""Test support: a tiny randomly initialised model directory, exported exactly as a trained
one (:func:`speechbrain_ee.recipe.export_pretrained`): for smoke tests of the
inference interface, the command-line tools and the benchmarks."""

import os
import shutil
import tempfile
from functools import partial

import sentencepiece
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.decoders.seq2seq import S2STransformerBeamSearcher

from speechbrain_ee.recipe import export_pretrained

TINY_ARCH = {
    "d_model": 16, "nhead": 2, "d_ffn": 32, "num_layers": 4, "exit_layers": [1, 2, 3, 4],
    "kernel_size": 3, "cnn_channels": [4, 4, 4], "n_mels": 20, "dropout": 0.0,
}

SENTENCES = [
    "HELLO WORLD", "THE QUICK BROWN FOX", "JUMPS OVER THE LAZY DOG", "ONE TWO THREE FOUR FIVE",
    "ERASE C Q Q F SEVEN", "RUBOUT G M E F THREE NINE", "YES NO STOP GO", "ENTER SIX TWO",
]


def train_tokenizer(sentences, folder, vocab_size=40, model_type="unigram", bos_eos=False):
    """Trains a SentencePiece model on ``sentences``; returns
    ``(processor, actual vocab size)`` with the model saved as
    ``folder/<vocab>_<model_type>.model`` (the recipe's naming). With
    ``bos_eos``, ids 1 and 2 are BOS/EOS (attention models)."""
    os.makedirs(folder, exist_ok=True)
    prefix = os.path.join(folder, "tmp_tokenizer")
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_prefix=prefix, vocab_size=vocab_size,
        model_type=model_type, character_coverage=1.0, hard_vocab_limit=False,
        bos_id=1 if bos_eos else -1, eos_id=2 if bos_eos else -1, minloglevel=2,
    )
    processor = sentencepiece.SentencePieceProcessor(model_file=prefix + ".model")
    size = processor.get_piece_size()
    os.replace(prefix + ".model", os.path.join(folder, f"{size}_{model_type}.model"))
    os.remove(prefix + ".vocab")
    return processor, size


def write_random_model_dir(folder, model_yaml, arch=None, sentences=SENTENCES, seed=0,
                           sample_rate=16000, attention_beam=None):
    """Builds the architecture of ``model_yaml`` (with ``arch`` overrides,
    default :data:`TINY_ARCH`) with random weights, a tokenizer trained on
    ``sentences`` and input statistics of random noise, and exports it to
    ``folder``. For an attention model (``conformer_aed_*.yaml``) give
    ``attention_beam``: the tokenizer gets BOS/EOS (1/2) and the export a
    joint CTC/attention searcher of that beam.

    Returns
    -------
    str
        ``folder``.
    """
    arch = dict(TINY_ARCH if arch is None else arch)
    work = tempfile.mkdtemp(prefix="sbee_random_model_")
    try:
        tokenizer, vocab_size = train_tokenizer(sentences, work, bos_eos=attention_beam is not None)
        torch.manual_seed(seed)
        with open(model_yaml) as handle:
            hparams = load_hyperpyyaml(handle, {**arch, "output_neurons": vocab_size + 1})
        noise = 0.1 * torch.randn(2, sample_rate)
        normalize = hparams["normalize"].train()
        normalize(hparams["compute_features"](noise), torch.ones(2))
        hparams.update(arch, tokenizer_folder=work, vocab_size=vocab_size, token_type="unigram",
                       sample_rate=sample_rate)
        if attention_beam is not None:
            hparams.update(bos_index=1, eos_index=2, ctc_weight_decode=0.4, test_search=partial(
                S2STransformerBeamSearcher, bos_index=1, eos_index=2, min_decode_ratio=0.0,
                max_decode_ratio=1.0, beam_size=attention_beam, using_eos_threshold=False,
            ))
        export_pretrained(hparams, folder, model_yaml)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder
