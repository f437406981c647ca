"""Fixed (not trained) tokenizers.

:class:`Wav2Vec2CharTokenizer` is the grapheme vocabulary of the official
wav2vec 2.0 English CTC recipe (``facebook/wav2vec2-base-960h``'s
``vocab.json``: ``<pad>`` = CTC blank, ``<s>``, ``</s>``, ``<unk>``, the word
delimiter ``|``, 26 letters by frequency and the apostrophe: 32 classes),
stored as a real SentencePiece character model. Everything that takes a
SentencePiece processor (the datasets, the brain's greedy decoding,
``ctc_vocab_list`` and SpeechBrain's CTC prefix beam search, the exported
inference directory) then works unchanged. Two conventions of this package
differ from the HF file, not the vocabulary:

* the CTC blank is the **last** class (index 31) as for every model here,
  so the 31 pieces keep HF's order and id = HF id - 1;
* the word delimiter is SentencePiece's ``▁`` (HF writes ``|``), which
  ``decode_ids`` and the beam searcher turn into spaces.

Transcripts are expected in upper case, as in the wav2vec2 recipe (AN4 and
LibriSpeech are); any other character becomes ``<unk>``.
"""

import io
import os

import sentencepiece as spm

SPECIAL_PIECES = ("<s>", "</s>", "<unk>")
WORD_DELIMITER = "\u2581"
WAV2VEC2_CHARACTERS = "ETAONIHSRDLUMWCFGYPBVK'XJQZ"


def build_char_model(characters, word_delimiter=WORD_DELIMITER):
    """Serialized SentencePiece ``char`` model whose pieces are, in order,
    ``<s>``, ``</s>``, ``<unk>``, ``word_delimiter`` and ``characters``.

    SentencePiece orders the characters of a ``char`` model by frequency, so
    the training text repeats the i-th character ``len - i`` times; the
    delimiter is a user-defined symbol (placed right after the specials).
    """
    characters = list(characters)
    if len(set(characters)) != len(characters) or " " in characters:
        raise ValueError(f"characters must be distinct and without space: {characters!r}")
    text = " ".join(c * (len(characters) + 1 - i) for i, c in enumerate(characters))
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([text]), model_writer=model, model_type="char",
        vocab_size=len(SPECIAL_PIECES) + 1 + len(characters),
        user_defined_symbols=[word_delimiter], bos_id=0, eos_id=1, unk_id=2, pad_id=-1,
        add_dummy_prefix=False, normalization_rule_name="identity",
        character_coverage=1.0, minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    if pieces_of(sp) != [*SPECIAL_PIECES, word_delimiter, *characters]:
        raise RuntimeError(f"sentencepiece built the pieces {pieces_of(sp)}, not the ones asked for")
    return model.getvalue()


def pieces_of(sp):
    """All pieces of a SentencePiece processor, in id order."""
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


class Wav2Vec2CharTokenizer:
    """The wav2vec2 character vocabulary as a SentencePiece processor.

    Drop-in for the recipes' ``tokenizer_trainer`` (SpeechBrain's
    ``SentencePiece`` wrapper): the processor is ``.sp`` and the model file is
    ``<model_dir>/31_char.model`` (``<vocab_size>_<token_type>.model`` with
    ``vocab_size: 31``, ``token_type: char``), written once and reused.

    Arguments
    ---------
    model_dir : str
        Where ``31_char.model`` is written.
    **ignored
        Trainer options of SpeechBrain's ``SentencePiece`` (none applies).

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> tok = Wav2Vec2CharTokenizer(folder.name)
    >>> tok.sp.get_piece_size(), tok.sp.id_to_piece(3), tok.sp.id_to_piece(4)
    (31, '▁', 'E')
    >>> ids = tok.sp.encode_as_ids("IT'S OK")
    >>> ids, tok.sp.decode_ids(ids)
    ([9, 5, 26, 11, 3, 7, 25], "IT'S OK")
    >>> folder.cleanup()
    """

    vocab_size = len(SPECIAL_PIECES) + 1 + len(WAV2VEC2_CHARACTERS)
    token_type = "char"

    def __init__(self, model_dir, **ignored):
        self.model_file = os.path.join(model_dir, f"{self.vocab_size}_{self.token_type}.model")
        if not os.path.isfile(self.model_file):
            os.makedirs(model_dir, exist_ok=True)
            with open(self.model_file, "wb") as handle:
                handle.write(build_char_model(WAV2VEC2_CHARACTERS))
        self.sp = spm.SentencePieceProcessor(model_file=self.model_file)
        expected = [*SPECIAL_PIECES, WORD_DELIMITER, *WAV2VEC2_CHARACTERS]
        if pieces_of(self.sp) != expected:
            raise ValueError(f"{self.model_file} is not the wav2vec2 character vocabulary {expected}")
