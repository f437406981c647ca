"""Exit posteriors -> text, as the ``decode_fn`` of dynamic inference and of the sweep."""

from speechbrain.decoders.ctc import CTCPrefixBeamSearcher

from speechbrain_ee.decoding import beam_transcripts, ctc_vocab_list, greedy_transcripts


class CTCTextDecoder:
    """Callable ``(log_probs, lengths) -> list of str`` with integer lengths.

    Arguments
    ---------
    tokenizer : sentencepiece.SentencePieceProcessor
        The model's tokenizer.
    blank_index : int
        CTC blank (the last class in this package).
    beam_size : int
        0 for greedy CTC, else SpeechBrain's ``CTCPrefixBeamSearcher`` with this beam.

    Example
    -------
    >>> import torch
    >>> class Chars:  # a stand-in for a SentencePiece processor
    ...     def get_piece_size(self): return 2
    ...     def id_to_piece(self, i): return "▁ab"[i + 1]
    ...     def decode_ids(self, ids): return "".join("ab"[i] for i in ids)
    >>> log_probs = torch.log_softmax(torch.tensor([[[5.0, 0, 0], [0, 0, 5], [0, 5, 0]]]), -1)
    >>> CTCTextDecoder(Chars(), blank_index=2)(log_probs, torch.tensor([3]))
    ['ab']
    """

    def __init__(self, tokenizer, blank_index, beam_size=0):
        self.tokenizer = tokenizer
        self.blank_index = blank_index
        self.beam_size = int(beam_size or 0)
        if self.beam_size < 0:
            raise ValueError(f"beam_size must be >= 0 (0 = greedy), got {beam_size}")
        self.searcher = None
        if self.beam_size:
            self.searcher = CTCPrefixBeamSearcher(
                blank_index=blank_index, vocab_list=self.vocab_list(), beam_size=self.beam_size
            )

    def vocab_list(self):
        """The CTC vocabulary (token strings, blank inserted)."""
        return ctc_vocab_list(self.tokenizer, self.blank_index)

    def __call__(self, log_probs, lengths):
        log_probs = log_probs.float().cpu()
        lengths = lengths.cpu()
        if self.searcher is None:
            rel_lens = lengths.float() / log_probs.shape[1]
            words = greedy_transcripts(log_probs, rel_lens, self.blank_index, self.tokenizer)
        else:  # one trimmed utterance at a time: no relative-length rounding
            words = [
                beam_transcripts(self.searcher, log_probs[i : i + 1, :n], None)[0]
                for i, n in enumerate(lengths.tolist())
            ]
        return [" ".join(w) for w in words]

    def __repr__(self):
        return "greedy CTC" if self.searcher is None else f"CTC prefix beam search (beam {self.beam_size})"
