"""Small TED-LIUM 3 and VoxPopuli corpora in their real on-disk layouts,
built from the real speech of ``../shared/data`` (LibriSpeech chapters become
TED talks: NIST SPHERE + STM; AN4 utterances become VoxPopuli clips and
sessions: Ogg Vorbis + TSV), with the awkward rows each corpus has.

Every builder returns what it planted, so that the tests compare the
preparation's output with the source transcripts, not with constants.
"""

import csv
import gzip
import os
import pathlib

import numpy
import soundfile

GAP_S = 0.5  # silence between the utterances of a talk or session


def librispeech_chapter(folder, limit):
    """``[(uttid, text, samples)]`` of one LibriSpeech chapter folder."""
    trans = next(pathlib.Path(folder).glob("*.trans.txt"))
    rows = []
    for line in trans.read_text().splitlines()[:limit]:
        uttid, text = line.split(maxsplit=1)
        samples, _ = soundfile.read(pathlib.Path(folder) / f"{uttid}.flac", dtype="int16")
        rows.append((uttid, text, samples))
    return rows


def concatenate(pieces, rate=16000):
    """One recording of the pieces with GAP_S of silence before each; their (start, stop) seconds."""
    gap = numpy.zeros(int(GAP_S * rate), dtype="int16")
    audio, times, at = [], [], 0
    for samples in pieces:
        audio += [gap, samples]
        at += len(gap)
        times.append((at / rate, (at + len(samples)) / rate))
        at += len(samples)
    audio.append(gap)
    return numpy.concatenate(audio), times


def tedlium_words(text):
    """TED-LIUM's STM spelling of a transcript: lower case, apostrophe suffixes split (``he 's``)."""
    return " ".join(w.replace("'", " '") if "'" in w[1:] else w for w in text.lower().split())


def build_tedlium(root, librispeech):
    """``TEDLIUM_release-3/legacy/{train,dev,test}/{sph,stm}``; returns
    ``{split: [(talk, start, stop, expected upper-case text)]}`` of the rows
    that must reach the manifests, and the awkward rows' count per split."""
    talks = {
        "train": [librispeech / "train-clean-5" / "32" / "21631", librispeech / "train-clean-5" / "669" / "129074"],
        "dev": [librispeech / "dev-clean-2" / "1988" / "24833"],
        "test": [librispeech / "dev-clean-2" / "2412" / "153948"],
    }
    expected = {}
    for split, chapters in talks.items():
        for sub in ("sph", "stm"):
            (root / "legacy" / split / sub).mkdir(parents=True, exist_ok=True)
        expected[split] = []
        for chapter in chapters:
            rows = librispeech_chapter(chapter, 4)
            talk = f"Speaker{chapter.parent.name}_{chapter.name}"
            audio, times = concatenate([r[2] for r in rows])
            soundfile.write(root / "legacy" / split / "sph" / f"{talk}.sph", audio, 16000,
                            format="NIST", subtype="PCM_16")
            end = len(audio) / 16000
            lines = [f";; talk {talk}"]
            for index, ((uttid, text, _), (start, stop)) in enumerate(zip(rows, times)):
                words = tedlium_words(text)
                if index == 1:  # an out-of-vocabulary word, as TED-LIUM marks them
                    rest = words.split(maxsplit=1)[1]
                    words = f"<unk> {rest}"
                    text = text.split(maxsplit=1)[1]
                lines.append(f"{talk} 1 {talk} {start:.2f} {stop:.2f} <o,f0,male> {words}")
                expected[split].append((talk, round(start, 2), round(stop, 2), text))
            lines += [
                f"{talk} 1 {talk} 0.00 {GAP_S:.2f} <o,f0,male> ignore_time_segment_in_scoring",
                f"{talk} 1 {talk} {end - 1:.2f} {end + 30:.2f} <o,f0,male> past the end of the talk",
                f"{talk} 1 garbled",
                f"{talk} 1 {talk} one two <o,f0,male> times that are not numbers",
            ]
            (root / "legacy" / split / "stm" / f"{talk}.stm").write_text("\n".join(lines) + "\n")
    return expected, 3  # outside the audio, malformed, non-numeric time


def an4_utterances(an4, split, speakers, per_speaker):
    """``[(uttid, speaker, TEXT, samples)]`` from AN4's transcripts."""
    etc = an4 / "etc"
    texts = {}
    for line in (etc / f"an4_{split}.transcription").read_text().splitlines():
        words, uttid = line.rsplit("(", 1)
        texts[uttid.strip(" )")] = " ".join(w for w in words.split() if w not in ("<s>", "</s>"))
    rows, counts = [], {}
    for fileid in (etc / f"an4_{split}.fileids").read_text().split():
        speaker = fileid.split("/")[-2]
        if speaker in speakers and counts.get(speaker, 0) < per_speaker:
            counts[speaker] = counts.get(speaker, 0) + 1
            samples, _ = soundfile.read(an4 / "wav" / f"{fileid}.sph", dtype="int16")
            rows.append((os.path.basename(fileid), speaker, texts[os.path.basename(fileid)], samples))
    return rows


def voxpopuli_sources(an4):
    """AN4 utterances for the VoxPopuli splits (speakers kept apart)."""
    return {
        "train": an4_utterances(an4, "train", {"fash", "fbbh", "fclc", "fejs"}, 6),
        "dev": an4_utterances(an4, "test", {"fcaw", "fjlp", "fvap"}, 2),
        "test": an4_utterances(an4, "test", {"marh", "menk", "mmxg"}, 2),
    }


def build_voxpopuli_clips(root, an4):
    """``transcribed_data/en/asr_{split}.tsv`` + ``<year>/<id>.ogg`` as
    ``voxpopuli.get_asr_data`` writes them; returns ``{split: {id: TEXT}}``
    of the usable rows and the number of awkward rows per split."""
    folder = root / "transcribed_data" / "en"
    header = ["id", "raw_text", "normalized_text", "speaker_id", "split", "gender"]
    expected = {}
    for split, rows in voxpopuli_sources(an4).items():
        expected[split] = {}
        lines = ["\t".join(header)]
        for index, (uttid, speaker, text, samples) in enumerate(rows):
            uid = f"20190115-0900-PLENARY-{index}-en_20190115-09:{index:02d}:00_{uttid}"
            (folder / uid[:4]).mkdir(parents=True, exist_ok=True)
            soundfile.write(folder / uid[:4] / f"{uid}.ogg", samples.astype("float32") / 32768, 16000,
                            format="OGG", subtype="VORBIS")
            lines.append("\t".join([uid, text.capitalize() + ".", text.lower(), speaker, split, "female"]))
            expected[split][uid] = text.upper()
        bad = "20190115-0900-PLENARY-99-en_20190115-10:00:00_"
        (folder / "2019" / f"{bad}corrupt.ogg").write_bytes(b"OggS not really an ogg file")
        soundfile.write(folder / "2019" / f"{bad}digits.ogg", rows[0][3].astype("float32") / 32768, 16000,
                        format="OGG", subtype="VORBIS")
        lines += [
            "\t".join([bad + "missing", "Gone.", "gone", "spk", split, "male"]),  # no audio file
            "\t".join([bad + "corrupt", "Broken.", "broken", "spk", split, "male"]),  # unreadable audio
            "\t".join([bad + "digits", "In 2019.", "in 2019", "spk", split, "male"]),  # outside the alphabet
            "\t".join([bad + "short", "Too few", "too few", "fields"]),  # wrong field count
        ]
        (folder / f"asr_{split}.tsv").write_text("\n".join(lines) + "\n")
    return expected, 4


def build_voxpopuli_sessions(root, an4):
    """``raw_audios/original/<year>/<session>_original.ogg`` (one long session
    per split) + ``asr_en.tsv.gz`` read by offset; returns ``{split: [(start,
    stop, TEXT)]}`` of the usable rows and the awkward rows per split."""
    columns = ["id_", "session_id", "speaker_id", "split", "gender", "start_time", "end_time",
               "normed_text", "original_text"]
    table = [columns]
    expected = {}
    for split, rows in voxpopuli_sources(an4).items():
        session = f"20200212-0900-PLENARY-{split}"
        folder = root / "raw_audios" / "original" / session[:4]
        folder.mkdir(parents=True, exist_ok=True)
        audio, times = concatenate([r[3] for r in rows])
        soundfile.write(folder / f"{session}_original.ogg", audio.astype("float32") / 32768, 16000,
                        format="OGG", subtype="VORBIS")
        expected[split] = []
        for index, ((_, speaker, text, _), (start, stop)) in enumerate(zip(rows, times)):
            table.append([str(index), session, speaker, split, "f", f"{start:.3f}", f"{stop:.3f}",
                          text.lower(), text])
            expected[split].append((round(start, 3), round(stop, 3), text.upper()))
        end = len(audio) / 16000
        table += [
            ["90", session, "spk", split, "f", f"{end - 0.5:.3f}", f"{end + 9:.3f}", "past the end", "x"],
            ["91", "20200212-0900-NO-SUCH-SESSION", "spk", split, "f", "0.0", "1.0", "no audio", "x"],
            ["92", session, "spk", split, "f"],  # truncated row
        ]
    with gzip.open(root / "asr_en.tsv.gz", "wt", newline="") as handle:
        csv.writer(handle, delimiter="|", lineterminator="\n").writerows(table)
    return expected, 3
