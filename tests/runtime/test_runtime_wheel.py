"""The torch-free runtime as its own distribution (packaging/runtime): its
wheel requires no PyTorch or SpeechBrain, holds only the runtime, and the
installed copy imports and answers --help with torch blocked."""

import importlib.util
import os
import pathlib
import subprocess
import sys
import zipfile

from test_runtime_import import BLOCKER  # the same import check, on the installed wheel

REPO = pathlib.Path(__file__).resolve().parents[2]


def build_wheel(out_dir):
    spec = importlib.util.spec_from_file_location("runtime_build", REPO / "packaging" / "runtime" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(out_dir)


def test_runtime_wheel_has_no_torch(tmp_path):
    wheel = build_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    requires = sorted(line.split(":", 1)[1].strip() for line in metadata.splitlines()
                      if line.startswith("Requires-Dist:"))
    assert requires == ["numpy", "onnxruntime", "sentencepiece", "soundfile"]
    code = sorted(n for n in names if n.endswith(".py"))
    assert code and all(n == "speechbrain_ee/__init__.py" or n.startswith("speechbrain_ee/runtime/") for n in code)

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, timeout=300)
    check = BLOCKER + "assert speechbrain_ee.runtime.__file__.startswith(sys.argv[1]), speechbrain_ee.runtime.__file__\n"
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run([sys.executable, "-c", check, str(target)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout
