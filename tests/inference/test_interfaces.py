"""EarlyExitASR on an exported tiny random model: loading, any audio format,
long audio, selectors, bad input."""

import math
import pathlib
import resource

import numpy
import pytest
import soundfile
import torch

from speechbrain_ee.data.audio import AudioError, load_audio
from speechbrain_ee.inference import EarlyExitASR, Transcription
from speechbrain_ee.testing import write_random_model_dir
from speechbrain_ee.selection import EntropySelector, PatienceSelector
from speechbrain_ee.selection.calibrate import save_selector

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("asr") / "model"
    return write_random_model_dir(str(folder), str(REPO / "hparams" / "conformer_ctc_small.yaml"))


@pytest.fixture(scope="module")
def asr(model_dir, tmp_path_factory):
    return EarlyExitASR.from_hparams(source=model_dir, savedir=str(tmp_path_factory.mktemp("savedir")))


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """A few files: 8 kHz stereo, 16 kHz mono of several lengths, 60 s, bad ones."""
    tmp = tmp_path_factory.mktemp("audio")
    rng = numpy.random.default_rng(0)
    files = {
        "stereo8k": (rng.standard_normal((12000, 2)) * 0.1, 8000),
        "short": (rng.standard_normal(7000) * 0.1, 16000),
        "medium": (rng.standard_normal(21000) * 0.1, 16000),
        "long60s": (rng.standard_normal(60 * 16000) * 0.1, 16000),
        "empty": (numpy.zeros(0), 16000),
    }
    paths = {}
    for name, (data, rate) in files.items():
        paths[name] = str(tmp / f"{name}.wav")
        soundfile.write(paths[name], data, rate)
    paths["not_audio"] = str(tmp / "not_audio.wav")
    pathlib.Path(paths["not_audio"]).write_text("this is not a wav file")
    paths["missing"] = str(tmp / "missing.flac")
    return paths


def test_loads_exported_directory(asr):
    assert asr.exit_layers == [1, 2, 3, 4]
    assert asr.default_selector is None
    assert not asr.model.training


def test_eight_khz_stereo_file(asr, audio):
    result = asr.recognize_file(audio["stereo8k"])
    assert isinstance(result, Transcription) and isinstance(result.text, str)
    assert (result.exit_index, result.layers, result.path) == (3, 4, audio["stereo8k"])
    # the same as the resampled mono waveform
    wav = load_audio(audio["stereo8k"], 16000)
    assert asr.recognize_batch(wav[None])[0].text == result.text


def test_fixed_exit_and_selectors(asr, audio):
    path = audio["medium"]
    assert asr.recognize_file(path, exit=1).layers == 2
    assert asr.recognize_file(path, selector="budget", threshold=3).exit_index == 2
    assert asr.recognize_file(path, selector="entropy", threshold=math.inf).exit_index == 0
    assert asr.recognize_file(path, selector="entropy", threshold=0.0).exit_index == 3
    assert asr.recognize_file(path, selector="confidence", threshold=0.0, topk=2).exit_index == 0
    assert asr.recognize_file(path, selector=PatienceSelector(1)).exit_index == 0
    at_exit = [asr.recognize_file(path, exit=e).text for e in range(4)]
    chosen = asr.recognize_file(path, selector="agreement", threshold=10.0)
    assert chosen.exit_index == 1 and chosen.text == at_exit[1]


def test_batch_of_files_equals_one_by_one(asr, audio):
    paths = [audio["short"], audio["stereo8k"], audio["medium"]]
    assignments = set()
    # the random model's entropies lie around log(41)/41 = 0.0906
    for threshold in [None, *numpy.linspace(0.082, 0.09, 17)]:
        kwargs = {} if threshold is None else {"selector": "entropy", "threshold": threshold}
        together = asr.recognize_files(paths, batch_size=3, **kwargs)
        alone = [asr.recognize_file(p, **kwargs) for p in paths]
        assert [(r.text, r.exit_index, r.path) for r in together] == \
               [(r.text, r.exit_index, r.path) for r in alone]
        assignments.add(tuple(r.exit_index for r in together))
    assert any(len(set(a)) > 1 for a in assignments), "some threshold should mix exits in the batch"


def test_sixty_second_file_with_bounded_memory(asr, audio):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = asr.recognize_file(audio["long60s"], selector="entropy", threshold=0.05)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.error is None and result.text is not None
    assert grown_mb < 300, f"peak memory grew by {grown_mb:.0f} MB for 60 s of audio"


@pytest.mark.parametrize("name, message", [
    ("empty", "empty audio file"), ("not_audio", "cannot read audio file"), ("missing", "cannot read audio file"),
])
def test_bad_file_is_a_clear_error(asr, audio, name, message):
    with pytest.raises(AudioError, match=message) as err:
        asr.recognize_file(audio[name])
    assert audio[name] in str(err.value)


def test_batch_reports_bad_files_and_goes_on(asr, audio):
    paths = [audio["short"], audio["empty"], audio["medium"], audio["missing"], audio["stereo8k"]]
    results = asr.recognize_files(paths, batch_size=2)
    assert [r.path for r in results] == paths
    assert [r.error is None for r in results] == [True, False, True, False, True]
    assert "empty audio file" in results[1].error and results[1].text is None
    assert results[2].text == asr.recognize_file(audio["medium"]).text


@pytest.mark.parametrize("kwargs, message", [
    ({"selector": "entropy", "threshold": float("nan")}, "entropy threshold"),
    ({"selector": "confidence", "threshold": 1.2}, "confidence threshold"),
    ({"selector": "confidence", "threshold": 0.5, "topk": 0}, "topk"),
    ({"exit": 4}, "not an exit"),
    ({"exit": -1}, "not an exit"),
    ({"exit": 1, "selector": "entropy"}, "either exit or selector"),
    ({"selector": "entropy"}, "needs a value"),
    ({"selector": "budget", "threshold": 0}, "max_layers"),
    ({"threshold": 0.5}, "go with a selector name"),
])
def test_bad_arguments_are_clear_errors(asr, audio, kwargs, message):
    with pytest.raises(ValueError, match=message):
        asr.recognize_file(audio["short"], **kwargs)
    with pytest.raises(ValueError, match=message):
        asr.recognize_files([audio["short"]], **kwargs)


def test_bad_batch_size(asr, audio):
    with pytest.raises(ValueError, match="batch_size"):
        asr.recognize_files([audio["short"]], batch_size=0)


def test_calibrated_selector_is_the_default(model_dir, tmp_path, audio):
    copy = tmp_path / "model"
    copy.mkdir()
    for item in pathlib.Path(model_dir).iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    save_selector(str(copy), EntropySelector(math.inf), {"note": "stops everyone at the first exit"})
    asr = EarlyExitASR.from_hparams(source=str(copy), savedir=str(tmp_path / "save"))
    assert asr.recognize_file(audio["short"]).exit_index == 0
    assert asr.recognize_file(audio["short"], exit=2).exit_index == 2


def test_not_a_model_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        EarlyExitASR.from_hparams(source=str(tmp_path))


def test_recognize_runs_a_padded_batch(asr):
    torch.manual_seed(0)
    out = asr.recognize_batch(torch.randn(2, 16000) * 0.1, torch.tensor([1.0, 0.5]), exit=0)
    assert [r.layers for r in out] == [1, 1]


def test_encoder_asr_compatible_api(asr, audio):
    """Same names, signatures and return types as SpeechBrain's EncoderASR."""
    text = asr.transcribe_file(audio["medium"])
    assert isinstance(text, str) and text == asr.recognize_file(audio["medium"]).text
    wav = load_audio(audio["medium"], 16000)
    words, tokens = asr.transcribe_batch(wav[None], torch.tensor([1.0]))
    assert words == [text]
    assert tokens == [asr.hparams.tokenizer.encode_as_ids(text)]
    log_probs = asr.encode_batch(wav[None], torch.tensor([1.0]))
    assert log_probs.dim() == 3 and log_probs.shape[0] == 1
    assert log_probs.shape[-1] == asr.hparams.blank_index + 1
    shallow = asr.encode_batch(wav[None], torch.tensor([1.0]), exit=0)
    assert not torch.allclose(shallow, log_probs)
    assert torch.equal(asr(wav[None], torch.tensor([1.0])), log_probs)
    words_at_exit, _ = asr.transcribe_batch(wav[None], None, exit=1)
    assert words_at_exit == [asr.recognize_file(audio["medium"], exit=1).text]


def test_recognize_every_exit_matches_fixed_exits(asr, audio):
    wavs = [load_audio(audio[name], 16000) for name in ("short", "medium")]
    from speechbrain.utils.data_utils import batch_pad_right

    padded, lens = batch_pad_right(wavs)
    every = asr.recognize_every_exit(padded, lens)
    assert len(every) == len(asr.exit_layers)
    for exit_index, texts in enumerate(every):
        assert texts == [r.text for r in asr.recognize_batch(padded, lens, exit=exit_index)]


def test_from_hparams_fetches_a_remote_source(model_dir, tmp_path, monkeypatch):
    """A hub id goes through SpeechBrain's fetch (simulated here: no network)."""
    import shutil

    import speechbrain.utils.fetching as fetching

    asked = []

    def fake_fetch(filename, source, savedir=None, **kwargs):
        asked.append((filename, source))
        path = pathlib.Path(model_dir) / filename
        if not path.is_file():
            raise ValueError(f"{source}/{filename} not found")
        pathlib.Path(savedir).mkdir(parents=True, exist_ok=True)
        return shutil.copy(path, pathlib.Path(savedir) / filename)

    monkeypatch.setattr(fetching, "fetch", fake_fetch)
    remote = EarlyExitASR.from_hparams("org/tiny-ee", savedir=str(tmp_path / "fetched"))
    assert ("hyperparams.yaml", "org/tiny-ee") in asked and ("model.ckpt", "org/tiny-ee") in asked
    assert remote.exit_layers == [1, 2, 3, 4]
    local = EarlyExitASR.from_hparams(model_dir, savedir=str(tmp_path / "local"))
    wav = torch.randn(1, 16000) * 0.1
    assert remote.transcribe_batch(wav)[0] == local.transcribe_batch(wav)[0]


def test_from_hparams_names_a_missing_remote_file(tmp_path, monkeypatch):
    import speechbrain.utils.fetching as fetching

    def no_files(filename, source, savedir=None, **kwargs):
        raise ValueError("404")

    monkeypatch.setattr(fetching, "fetch", no_files)
    with pytest.raises(FileNotFoundError, match="hyperparams.yaml of the model org/none"):
        EarlyExitASR.from_hparams("org/none", savedir=str(tmp_path / "x"))
