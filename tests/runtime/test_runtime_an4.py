"""The shipped AN4 CTC model exported to ONNX and run by the torch-free
runtime on real speech: fp32 transcripts equal PyTorch's at every exit, the
int8 folder stays close, and the runtime stops at the exit."""

import glob
import os

import pytest
import torch

from speechbrain_ee.decoding import greedy_transcripts
from speechbrain_ee.checkpoints import load_model_dir
from speechbrain_ee.export.onnx import export_model_dir
from speechbrain_ee.features import model_inputs
from speechbrain_ee.runtime import EarlyExitRuntime
from speechbrain_ee.runtime.evaluation import exit_word_error_rates

pytest.importorskip("onnxruntime")
MODEL = os.path.join(os.path.dirname(__file__), "..", "..", "pretrained", "an4-conformer-ctc-ee")


@pytest.fixture(scope="module")
def an4_files(an4_dir):
    return sorted(glob.glob(str(an4_dir / "wav" / "an4test_clstk" / "*" / "*.sph")))[::16]  # 9 files, 8 voices


@pytest.fixture(scope="module")
def fp32_folder(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("an4_onnx") / "fp32")
    export_model_dir(MODEL, folder)
    return folder


def test_runtime_an4_fp32_onnx_transcripts_equal_pytorch_at_every_exit(an4_files, fp32_folder):
    folder = fp32_folder
    hparams = load_model_dir(MODEL)
    model, normalize = hparams["model"].eval(), hparams["normalize"].eval()
    runtime = EarlyExitRuntime(folder)
    for path in an4_files:
        wav = runtime.load_audio(path)
        with torch.no_grad():
            feats, lengths = model_inputs(torch.from_numpy(wav)[None], torch.ones(1),
                                          hparams["compute_features"], normalize)
            log_probs, _ = model(feats, lengths)
        expected = [" ".join(greedy_transcripts(lp, torch.ones(1), hparams["blank_index"],
                                                hparams["tokenizer"])[0]) for lp in log_probs]
        assert runtime.all_exits(wav) == expected, path


def test_runtime_an4_int8_close_and_stops_at_the_exit(an4_files, fp32_folder, tmp_path):
    int8 = str(tmp_path / "int8")
    export_model_dir(MODEL, int8, int8=True)
    fp32 = EarlyExitRuntime(fp32_folder)
    references = [fp32.all_exits(fp32.load_audio(p))[-1] for p in an4_files]
    runtime = EarlyExitRuntime(int8)
    hyps = [runtime.all_exits(runtime.load_audio(p)) for p in an4_files]
    # against the fp32 top exit's transcripts: the top exits of int8 differ by a few words at most
    assert exit_word_error_rates(hyps, references)[-1] <= 5.0
    runtime = EarlyExitRuntime(int8)
    for path in an4_files:
        result = runtime.recognize_file(path, exit=2)
        assert (result.exit_index, result.layer) == (2, 6) and result.text
    assert runtime.run_counts == {name: len(an4_files) for name in
                                  ("frontend.onnx", "exit_0.onnx", "exit_1.onnx", "exit_2.onnx")}
