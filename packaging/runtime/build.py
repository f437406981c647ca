#!/usr/bin/env python3
"""Builds the ``speechbrain_ee_runtime`` wheel (no PyTorch, no SpeechBrain):

    python packaging/runtime/build.py dist/
    pip install dist/speechbrain_ee_runtime-*.whl     # numpy, onnxruntime, sentencepiece, soundfile

The wheel holds ``speechbrain_ee/__init__.py`` (whose names load lazily) and
``speechbrain_ee/runtime/``, copied into a staging folder with this folder's
``setup.cfg``, so the runtime's code exists once, in the package."""

import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
PACKAGE = HERE.parents[1] / "speechbrain_ee"


def build(out_dir):
    """Writes the wheel into ``out_dir``; returns its path."""
    out_dir = pathlib.Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sbee_runtime_") as stage:
        stage = pathlib.Path(stage)
        for name in ("setup.cfg", "pyproject.toml"):
            shutil.copy(HERE / name, stage / name)
        (stage / "speechbrain_ee").mkdir()
        shutil.copy(PACKAGE / "__init__.py", stage / "speechbrain_ee" / "__init__.py")
        shutil.copytree(PACKAGE / "runtime", stage / "speechbrain_ee" / "runtime",
                        ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                        "-w", str(out_dir), str(stage)], check=True)
    wheels = sorted(out_dir.glob("speechbrain_ee_runtime-*.whl"))
    if not wheels:
        raise SystemExit(f"error: no wheel written to {out_dir}")
    return wheels[-1]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python packaging/runtime/build.py OUT_DIR")
    print(build(sys.argv[1]))
