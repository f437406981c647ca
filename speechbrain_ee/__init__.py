"""speechbrain_ee: early-exit speech recognition on top of SpeechBrain.

The names below are imported on first use, so that the torch-free
:mod:`speechbrain_ee.runtime` can be imported without PyTorch.
"""

import importlib

__version__ = "0.1.0"

_LAZY_NAMES = {
    "EarlyExitConformerEncoder": "speechbrain_ee.nnet",
    "EarlyExitCTC": "speechbrain_ee.nnet",
    "ExitHeads": "speechbrain_ee.nnet",
    "MaskedConvFrontEnd": "speechbrain_ee.nnet",
    "early_exit_ctc_loss": "speechbrain_ee.losses",
}

__all__ = sorted(_LAZY_NAMES)


def __getattr__(name):
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'speechbrain_ee' has no attribute {name!r}")
