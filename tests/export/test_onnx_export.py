"""ONNX export of an early-exit CTC model: per-exit graphs, int8, manifest, CLI."""

import json
import os

import numpy
import pytest
import torch
from speechbrain.lobes.features import Fbank

from speechbrain_ee.export import cli
from speechbrain_ee.export.onnx import export_model, quantize_torch_model
from speechbrain_ee.features import model_inputs
from speechbrain_ee.nnet import EarlyExitConformerEncoder, EarlyExitCTC, ExitHeads, MaskedConvFrontEnd
from speechbrain_ee.runtime import DeploymentError, EarlyExitRuntime
from speechbrain_ee.selection.selectors import EntropySelector

pytest.importorskip("onnxruntime")
TOKENIZER = os.path.join(os.path.dirname(__file__), "..", "..", "pretrained", "an4-conformer-ctc-ee",
                         "tokenizer.model")
CLASSES = 29  # the AN4 tokenizer's 28 pieces + blank


def tiny_model():
    encoder = EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (4, 4)), d_model=32, nhead=4, d_ffn=64,
                                        num_layers=4, exit_layers=[1, 3, 4], kernel_size=5)
    return EarlyExitCTC(encoder, ExitHeads(32, CLASSES, 3)).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model, features = tiny_model(), Fbank(n_mels=20)
    folders = {}
    for int8 in (False, True):
        folder = str(tmp_path_factory.mktemp("int8" if int8 else "fp32"))
        export_model(model, features, None, TOKENIZER, folder, exit_layers=model.exit_layers,
                     blank_index=CLASSES - 1, sample_rate=16000, selector=EntropySelector(0.01),
                     int8=int8, overwrite=True)
        folders[int8] = folder
    return model, features, folders


def torch_log_probs(model, features, wav):
    with torch.no_grad():
        feats, lengths = model_inputs(torch.from_numpy(wav)[None], torch.ones(1), features)
        return [lp[0].numpy() for lp in model(feats, lengths)[0]]


@pytest.mark.parametrize("seconds", [0.3, 1.7])
def test_onnx_exits_equal_pytorch_at_any_length(exported, seconds):
    model, features, folders = exported
    wav = numpy.random.default_rng(0).standard_normal(int(16000 * seconds)).astype(numpy.float32) * 0.1
    runtime = EarlyExitRuntime(folders[False])
    expected = torch_log_probs(model, features, wav)
    state = runtime.start(wav)
    for exit_index, reference in enumerate(expected):
        state, log_probs = runtime.step(state, exit_index)
        numpy.testing.assert_allclose(log_probs, reference, atol=2e-3)


def test_onnx_int8_folder_smaller_and_close(exported):
    model, features, folders = exported
    size = {k: sum(os.path.getsize(os.path.join(f, n)) for n in os.listdir(f)) for k, f in folders.items()}
    assert size[True] < size[False]
    wav = numpy.random.default_rng(1).standard_normal(16000).astype(numpy.float32) * 0.1
    reference = torch_log_probs(model, features, wav)[-1]
    runtime = EarlyExitRuntime(folders[True])
    state = runtime.start(wav)
    for exit_index in range(3):
        state, log_probs = runtime.step(state, exit_index)
    assert numpy.abs(numpy.exp(log_probs) - numpy.exp(reference)).max() < 0.1
    quantized = quantize_torch_model(model)
    with torch.no_grad():
        feats, lengths = model_inputs(torch.from_numpy(wav)[None], torch.ones(1), features)
        torch_int8 = quantized(feats, lengths)[0][-1][0].numpy()
    assert numpy.abs(numpy.exp(torch_int8) - numpy.exp(reference)).max() < 0.1


def test_onnx_folder_manifest_and_settings(exported, tmp_path):
    _, _, folders = exported
    folder = folders[False]
    config = json.load(open(os.path.join(folder, "deployment.json")))
    assert config["exit_layers"] == [1, 3, 4]
    assert config["selector"] == {"name": "entropy", "parameter": "threshold", "value": 0.01}
    manifest = json.load(open(os.path.join(folder, "manifest.json")))["files"]
    assert sorted(manifest) == sorted(n for n in os.listdir(folder) if n != "manifest.json")
    runtime = EarlyExitRuntime(folder)
    assert type(runtime.default_selector).__name__ == "Entropy"
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for name in os.listdir(folder):
        (tampered / name).write_bytes(open(os.path.join(folder, name), "rb").read())
    with open(tampered / "exit_1.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(DeploymentError, match="exit_1.onnx does not match its sha256"):
        EarlyExitRuntime(str(tampered))


def test_onnx_runtime_stops_at_the_exit(exported):
    _, _, folders = exported
    runtime = EarlyExitRuntime(folders[True])
    wav = numpy.zeros(8000, dtype=numpy.float32)
    result = runtime.transcribe_waveform(wav, exit=1)
    assert (result.exit_index, result.layer) == (1, 3)
    assert runtime.run_counts == {"frontend.onnx": 1, "exit_0.onnx": 1, "exit_1.onnx": 1}
    assert "exit_2.onnx" not in runtime._sessions  # never even loaded
    runtime.transcribe_waveform(wav, selector="budget", value=1)
    assert runtime.run_counts["exit_0.onnx"] == 2 and runtime.run_counts["exit_1.onnx"] == 1


def test_onnx_export_cli_errors(tmp_path, capsys):
    assert cli.main([str(tmp_path / "missing"), "-o", str(tmp_path / "out")]) == 2
    assert "not a model directory" in capsys.readouterr().err
    assert cli.main([str(tmp_path), "-o", str(tmp_path / "out"), "--quantize-heads"]) == 2
    assert "go with --int8" in capsys.readouterr().err


def test_onnx_export_refuses_self_conditioned_models(tmp_path):
    model = tiny_model()
    conditioned = EarlyExitCTC(model.encoder, model.heads, self_condition=True)
    with pytest.raises(ValueError, match="self-conditioned"):
        export_model(conditioned, Fbank(n_mels=20), None, TOKENIZER, str(tmp_path), exit_layers=[1, 3, 4],
                     blank_index=28, sample_rate=16000)


def test_runtime_cli_transcribes_reports_errors_and_scores_exits(exported, tmp_path, capsys):
    from speechbrain_ee.runtime import cli as runtime_cli

    _, _, folders = exported
    wav = tmp_path / "a.wav"
    import soundfile

    soundfile.write(str(wav), numpy.zeros(8000, dtype=numpy.float32), 16000)
    assert runtime_cli.main([folders[True], str(wav), "--exit", "1", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("path\ttext") and lines[1].split("\t")[2:4] == ["1", "3"]
    assert runtime_cli.main([folders[True], str(wav), str(tmp_path / "missing.wav"), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "missing.wav" in captured.err and "1 of 2 files could not be transcribed" in captured.err
    assert runtime_cli.main([str(tmp_path), str(wav)]) == 2
    assert "not a deployment folder" in capsys.readouterr().err
    soundfile.write(str(tmp_path / "b.wav"), numpy.zeros(800, dtype=numpy.float32), 8000)
    assert runtime_cli.main([folders[True], str(tmp_path / "b.wav"), "--no-progress"]) == 1
    assert "8000 Hz" in capsys.readouterr().err
    manifest = tmp_path / "test.csv"
    manifest.write_text(f"ID,wav,wrd\nu1,{wav},HELLO\n")
    assert runtime_cli.main([folders[False], "--csv", str(manifest), "--all-exits"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["exit_layers"] == [1, 3, 4] and len(scores["wer"]) == 3 and scores["decoding"] == "greedy CTC"
