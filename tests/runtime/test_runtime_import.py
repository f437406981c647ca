"""speechbrain_ee.runtime imports and runs without torch or speechbrain."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BLOCKER = """
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchaudio", "speechbrain"):
            raise ImportError(f"{name} is blocked")
        return None

sys.meta_path.insert(0, Blocker())
import speechbrain_ee.runtime
import speechbrain_ee.runtime.cli
from speechbrain_ee.runtime import EarlyExitRuntime, make_selector
assert make_selector("entropy", 0.1).threshold == 0.1
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "speechbrain", "torchaudio"))
print("HEAVY", heavy)
"""


def test_runtime_imports_without_torch():
    env = {**os.environ, "PYTHONPATH": REPO}
    result = subprocess.run([sys.executable, "-c", BLOCKER], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
