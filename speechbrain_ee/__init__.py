"""speechbrain_ee: early-exit speech recognition on top of SpeechBrain."""

__version__ = "0.1.0"

from speechbrain_ee.losses import early_exit_ctc_loss  # noqa: E402
from speechbrain_ee.nnet import (  # noqa: E402
    EarlyExitConformerEncoder,
    EarlyExitCTC,
    ExitHeads,
    MaskedConvFrontEnd,
)

__all__ = [
    "EarlyExitConformerEncoder",
    "EarlyExitCTC",
    "ExitHeads",
    "MaskedConvFrontEnd",
    "early_exit_ctc_loss",
]
