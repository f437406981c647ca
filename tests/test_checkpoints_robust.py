"""Exported models verified against their sha256; checkpoints written
atomically, with a fall-back to the last intact one and the RNG state."""

import pathlib
import shutil

import pytest

from speechbrain_ee.checkpoints import CHECKSUM_FILE, ChecksumError, read_checksums, verify_export_files
from speechbrain_ee.inference import EarlyExitASR
from speechbrain_ee.inference.random_model import write_random_model_dir

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export") / "model"
    write_random_model_dir(str(folder), str(REPO / "hparams" / "conformer_ctc_small.yaml"))
    return folder


def copy_of(exported, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(exported, target)
    return target


def flip_byte(path, offset=-100):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_robust_export_writes_checksums(exported):
    sums = read_checksums(exported / CHECKSUM_FILE)
    assert {"model.ckpt", "normalize.ckpt", "tokenizer.model", "hyperparams.yaml"} <= set(sums)


@pytest.mark.parametrize("name", ["model.ckpt", "normalize.ckpt", "tokenizer.model"])
def test_robust_flipped_byte_is_a_clear_error(exported, tmp_path, name):
    model = copy_of(exported, tmp_path)
    flip_byte(model / name)
    with pytest.raises(ChecksumError, match=rf"{name} is damaged or was changed after export"):
        EarlyExitASR.from_hparams(source=str(model), savedir=str(tmp_path / "save"))


def test_robust_edited_yaml_and_intact_files_load(exported, tmp_path):
    model = copy_of(exported, tmp_path)
    (model / "hyperparams.yaml").write_text((model / "hyperparams.yaml").read_text() + "\n# tuned by hand\n")
    asr = EarlyExitASR.from_hparams(source=str(model), savedir=str(tmp_path / "save"))
    assert asr.exit_layers


def test_robust_old_export_without_checksums_loads_with_a_warning(exported, tmp_path):
    model = copy_of(exported, tmp_path)
    (model / CHECKSUM_FILE).unlink()
    with pytest.warns(UserWarning, match=f"no {CHECKSUM_FILE}"):
        verify_export_files(str(model / "model.ckpt"))
    EarlyExitASR.from_hparams(source=str(model), savedir=str(tmp_path / "save"))


@pytest.mark.parametrize("name", ["an4-conformer-ctc-ee", "an4-conformer-aed-ee"])
def test_robust_shipped_models_have_matching_checksums(name):
    verify_export_files(str(REPO / "pretrained" / name / "model.ckpt"))
    assert set(read_checksums(REPO / "pretrained" / name / CHECKSUM_FILE)) >= {"model.ckpt", "tokenizer.model"}
