"""Early-exit speech recognition without PyTorch.

Runs a deployment folder written by ``speechbrain_ee.export`` with numpy,
onnxruntime, sentencepiece and soundfile only (``pip install
speechbrain_ee[runtime]``)::

    from speechbrain_ee.runtime import EarlyExitRuntime
    asr = EarlyExitRuntime("an4-onnx-int8")
    asr.transcribe_file("a.wav")                 # text, the folder's selector
    asr.recognize_file("a.wav", exit=2)          # Result: text, exit, depth
    asr.transcribe_file("a.wav", selector="entropy", value=0.01)

Command line: ``python -m speechbrain_ee.runtime FOLDER a.wav b.wav``.
Nothing here may import torch or speechbrain: a test imports this package
with torch made unimportable.
"""

from speechbrain_ee.runtime.model import DeploymentError, EarlyExitRuntime, Result  # noqa: F401
from speechbrain_ee.runtime.selectors import SELECTORS, make_selector  # noqa: F401
