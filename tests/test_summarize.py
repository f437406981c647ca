import json

from speechbrain_ee.summarize import machine_info, summarize, training_wall_seconds


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
