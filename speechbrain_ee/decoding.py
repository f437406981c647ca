"""Turning exit posteriors into words (greedy CTC and SpeechBrain's prefix beam search)."""

import speechbrain as sb


def ctc_vocab_list(tokenizer, blank_index):
    """Token strings of a SentencePiece model with the CTC blank inserted at
    ``blank_index`` (the list SpeechBrain's CTC beam searchers expect)."""
    pieces = [tokenizer.id_to_piece(i) for i in range(tokenizer.get_piece_size())]
    pieces.insert(blank_index, "<blank>")
    return pieces


def greedy_transcripts(log_probs, rel_lens, blank_index, tokenizer):
    """Greedy CTC decoding: one transcript (list of words) per utterance."""
    token_ids = sb.decoders.ctc_greedy_decode(log_probs, rel_lens, blank_id=blank_index)
    return [tokenizer.decode_ids([int(t) for t in ids]).split() for ids in token_ids]


def beam_transcripts(searcher, log_probs, rel_lens):
    """Best transcript (list of words) of each utterance from a CTC beam searcher."""
    hyps = searcher(log_probs, rel_lens)
    return [h[0].text.split() if h else [] for h in hyps]
