import json

from speechbrain_ee.cli.summarize import summarize, training_wall_seconds
from speechbrain_ee.machine import machine_info


def test_wall_time_sums_resumed_segments(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text(
        "2026-11-22 03:00:00,001 - speechbrain.core - INFO - Beginning experiment!\n"
        "2026-11-22 03:10:00,001 - speechbrain.utils.epoch_loop - INFO - Going into epoch 2\n"
        "a traceback line without a stamp\n"
        "2026-11-22 04:00:00,001 - speechbrain.core - INFO - Beginning experiment!\n"
        "2026-11-22 04:05:30,001 - speechbrain.utils.train_logger - INFO - Epoch loaded: 2\n"
    )
    wall, segments = training_wall_seconds(str(log))
    assert segments == 2
    assert wall == 600 + 330  # the gap between the stop and the resume is not counted


def test_machine_info_fields():
    info = machine_info()
    assert info["cpu_count"] >= 1 and info["torch"] and info["speechbrain"]


def test_summary_takes_params_and_threads_of_the_run(tmp_path):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "log.txt").write_text(
        "2026-11-22 03:00:00,001 - speechbrain.core - INFO - Beginning experiment!\n"
        "2026-11-22 03:01:40,001 - speechbrain.utils.train_logger - INFO - Epoch loaded: 2\n"
    )
    (exp / "exit_summary_test.json").write_text(json.dumps(
        {"exit_layers": [2, 4], "wer": [20.0, 10.0], "cer": [9.0, 5.0], "params": 1234, "torch_threads": 1}
    ))
    record = summarize(str(exp), "python train.py x.yaml")
    assert record["params"] == 1234 and record["wall_s"] == 100
    assert record["machine"]["torch_threads"] == 1  # the run's, not this process's
    assert record["wer"] == [20.0, 10.0] and record["command"] == "python train.py x.yaml"


def test_epoch_seconds_count_model_epochs_only(tmp_path):
    from speechbrain_ee.cli.summarize import epoch_time_summary, epoch_wall_seconds

    log = tmp_path / "log.txt"
    log.write_text(
        "2026-11-22 03:00:00,001 - speechbrain.utils.epoch_loop - INFO - Going into epoch 1\n"
        "2026-11-22 03:00:02,001 - speechbrain_ee.brains.lm - INFO - LM epoch 1: train loss 20.0, valid loss 19.0\n"
        "2026-11-22 03:00:02,002 - speechbrain.utils.epoch_loop - INFO - Going into epoch 1\n"
        "2026-11-22 03:01:42,001 - speechbrain.utils.train_logger - INFO - epoch: 1, lr: 3.80e-04 - train loss: 9\n"
        "2026-11-22 03:01:42,002 - speechbrain.utils.epoch_loop - INFO - Going into epoch 2\n"
        "2026-11-22 03:03:32,001 - speechbrain.utils.train_logger - INFO - epoch: 2, lr: 7.60e-04 - train loss: 8\n"
        "2026-11-22 03:03:32,002 - speechbrain.utils.epoch_loop - INFO - Going into epoch 3\n"
        "2026-11-22 03:05:00,001 - speechbrain.utils.train_logger - INFO - Epoch loaded: 2 - test loss: 7\n"
    )
    seconds = epoch_wall_seconds(str(log))
    assert seconds == [100.0, 110.0]  # the LM epoch and the unfinished epoch 3 are left out
    assert epoch_time_summary(seconds) == {"count": 2, "min": 100, "median": 105, "max": 110}
    assert epoch_time_summary([]) is None
