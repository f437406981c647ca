"""The demo writes only under its output folder, which git ignores, so running
``bash run.sh demo`` leaves the checkout clean (the whole demo runs in
tests/recipes/test_synthetic_recipe.py; here its training is replaced)."""

import shutil
import subprocess
import types

import pytest
import torch

from speechbrain_ee.cli import demo


def test_default_paths_are_under_the_output_folder():
    args, overrides = demo.parse_args([])
    assert overrides == []
    assert args.output_dir == str(demo.REPO_ROOT / "demo_output")
    assert args.json_out is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_default_output_folder_is_ignored_by_git():
    inside = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"], cwd=demo.REPO_ROOT, capture_output=True, text=True
    )
    if inside.returncode != 0:
        pytest.skip(f"{demo.REPO_ROOT} is not a git checkout")
    args, _ = demo.parse_args([])
    for path in (args.output_dir,):
        probe = f"{path}/{demo.RESULT_NAME}.json"
        ignored = subprocess.run(["git", "check-ignore", "-q", probe], cwd=demo.REPO_ROOT)
        assert ignored.returncode == 0, f"{probe} is not git-ignored"


def fake_run(recipe_argv):
    """Stands in for the recipe: returns a finished Brain's attributes."""
    model = torch.nn.Linear(2, 3)
    return types.SimpleNamespace(
        test_results={"test": {"exit_layers": [2, 4], "wer": [30.0, 20.0], "cer": [15.0, 10.0]}},
        train_wall_s=1.0,
        hparams=types.SimpleNamespace(epoch_counter=types.SimpleNamespace(current=1)),
        modules=types.SimpleNamespace(model=model),
    )


def test_demo_writes_nothing_outside_its_output_folder(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr("speechbrain_ee.recipe.run", lambda argv: seen.append(argv) or fake_run(argv))
    output = tmp_path / "work"
    assert demo.main(["--output-dir", str(output), "--minutes", "1"]) == 0
    folders = dict(arg[2:].split("=", 1) for arg in seen[0] if arg.startswith(("--output_folder", "--data_folder")))
    assert set(folders) == {"output_folder", "data_folder"}
    assert all(folder.startswith(str(output)) for folder in folders.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
    assert {p.name for p in output.iterdir()} == {f"{demo.RESULT_NAME}.json", f"{demo.RESULT_NAME}.png"}
