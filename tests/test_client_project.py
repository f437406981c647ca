"""A SpeechBrain project of its own (tests/client_project, written as
SpeechBrain's ASR template) uses the package: (a) its own Brain with the
package's model and loss, (b) the package's Brain with the project's keys,
augmenter and scheduler; each on real AN4 speech, alone and under
``torchrun --nproc_per_node=2`` with gloo (weights identical on both ranks)."""

import csv
import json
import os
import pathlib
import subprocess
import sys

import pytest
import soundfile

from speechbrain_ee.data.an4 import prepare_an4

PROJECT = pathlib.Path(__file__).resolve().parent / "client_project"
REPO = PROJECT.parents[1]


@pytest.fixture(scope="module")
def client_data(an4_dir, tmp_path_factory):
    """The project's CSVs (ID, duration, wav, words): a few short AN4 utterances."""
    folder = tmp_path_factory.mktemp("client_data")
    prepare_an4(str(an4_dir), str(folder / "an4"))

    def rows(name):
        with open(folder / "an4" / f"{name}.csv", newline="") as handle:
            return [{"ID": r["ID"], "duration": r["duration"], "wav": r["wav"], "words": r["wrd"]}
                    for r in csv.DictReader(handle)]

    def write(name, selected):
        with open(folder / f"{name}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["ID", "duration", "wav", "words"])
            writer.writeheader()
            writer.writerows(selected)

    train = rows("train")
    write("tokenizer", train)
    short = sorted(train, key=lambda r: float(r["duration"]))
    write("train", short[:16])
    write("valid", short[16:24])
    write("test", sorted(rows("test"), key=lambda r: float(r["duration"]))[:8])
    return folder


def run_client(data, out, brain, processes=1):
    args = ["hparams/client.yaml", f"--data_folder={data}", f"--output_folder={out}", f"--brain={brain}",
            f"--export_arch_file={REPO / 'hparams' / 'conformer_ctc_small.yaml'}",
            "--device=cpu", "--noprogressbar"]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
                   "--standalone", "client_asr.py", *args, "--distributed_backend=gloo"]
    else:
        command = [sys.executable, "client_asr.py", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "Grad strides do not match" not in done.stderr
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(processes)]


@pytest.mark.parametrize("brain", ["client", "package"])
def test_client_project_trains_and_evaluates(client_data, tmp_path, brain):
    (result,) = run_client(client_data, tmp_path / "out", brain)
    assert len(result["wer"]) == 2 and all(0 <= w <= 200 for w in result["wer"])
    assert result["lr"] <= 0.002  # NewBob ran (epoch level) without crashing
    # exported with export_model, loaded by EarlyExitASR: the same text as in the project
    assert result["exported"]["exported"] == result["exported"]["in_project"]


@pytest.mark.parametrize("brain", ["client", "package"])
def test_client_project_ddp_two_processes(client_data, tmp_path, brain):
    ranks = run_client(client_data, tmp_path / "out", brain, processes=2)
    assert ranks[0]["weights"] == pytest.approx(ranks[1]["weights"], rel=1e-6, abs=1e-6)
    assert ranks[0]["wer"] == ranks[1]["wer"]  # both evaluated the same (synchronised) model on the same test set
