"""Exported models verified against their sha256; checkpoints written
atomically, with a fall-back to the last intact one and the RNG state."""

import errno
import logging
import pathlib
import random
import shutil
import time

import numpy
import pytest
import torch
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_ee.checkpoints import (
    CHECKSUM_FILE,
    ChecksumError,
    SafeCheckpointer,
    read_checksums,
    verify_export_files,
)
from speechbrain_ee.inference import EarlyExitASR
from speechbrain_ee.testing import write_random_model_dir

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


# ---------------------------------------------------------------- training checkpoints
def checkpointer_with_two_epochs(folder):
    model = torch.nn.Linear(2, 2)
    checkpointer = SafeCheckpointer(folder, {"model": model})
    for epoch in (1, 2):
        model.weight.data.fill_(float(epoch))
        checkpointer.save_checkpoint(meta={"epoch": epoch})
        time.sleep(0.01)
    return checkpointer, model


def newest(folder):
    return sorted(pathlib.Path(folder).glob("CKPT+*"))[-1]


def test_robust_failed_save_leaves_no_checkpoint(tmp_path):
    checkpointer, model = checkpointer_with_two_epochs(tmp_path)

    def disk_full(obj, path):
        path.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    checkpointer.add_recoverable("extra", torch.nn.Linear(1, 1), custom_save_hook=disk_full)
    with pytest.raises(OSError, match="No space left"):
        checkpointer.save_checkpoint(meta={"epoch": 3})
    assert sorted(c.meta["epoch"] for c in checkpointer.list_checkpoints()) == [1, 2]
    assert not list(tmp_path.glob(".tmp-*"))


def test_robust_damaged_newest_checkpoint_falls_back_to_intact_one(tmp_path, caplog):
    checkpointer, model = checkpointer_with_two_epochs(tmp_path)
    broken = newest(tmp_path) / "model.ckpt"
    broken.write_bytes(broken.read_bytes()[:40])  # cut short, as on a full disk
    model.weight.data.zero_()
    with caplog.at_level(logging.WARNING):
        loaded = checkpointer.recover_if_possible()
    assert loaded.meta["epoch"] == 1 and model.weight.data.eq(1.0).all()
    assert "damaged or incomplete" in caplog.text and broken.parent.name in caplog.text


def test_robust_unloadable_legacy_checkpoint_falls_back(tmp_path, caplog):
    model = torch.nn.Linear(2, 2)
    legacy = Checkpointer(tmp_path, {"model": model})  # plain SpeechBrain: no sums
    model.weight.data.fill_(1.0)
    legacy.save_checkpoint(meta={"epoch": 1})
    time.sleep(0.01)
    legacy.save_checkpoint(meta={"epoch": 2})
    (newest(tmp_path) / "model.ckpt").write_bytes(b"not a torch file")
    model.weight.data.zero_()
    with caplog.at_level(logging.WARNING):
        loaded = SafeCheckpointer(tmp_path, {"model": model}).recover_if_possible()
    assert loaded.meta["epoch"] == 1 and model.weight.data.eq(1.0).all()
    assert "trying the previous one" in caplog.text


def test_robust_rng_state_is_checkpointed(tmp_path):
    checkpointer, _ = checkpointer_with_two_epochs(tmp_path)
    draws = (torch.rand(3), numpy.random.rand(3), random.random())
    checkpointer.save_checkpoint(meta={"epoch": 3})
    expected = (torch.rand(3), numpy.random.rand(3), random.random())
    torch.manual_seed(123), numpy.random.seed(123), random.seed(123)
    assert checkpointer.recover_if_possible().meta["epoch"] == 3
    again = (torch.rand(3), numpy.random.rand(3), random.random())
    assert torch.equal(again[0], expected[0]) and (again[1] == expected[1]).all() and again[2] == expected[2]
    assert not torch.equal(draws[0], expected[0])
