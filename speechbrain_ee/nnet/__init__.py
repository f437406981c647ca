"""Neural building blocks of early-exit models."""

from speechbrain_ee.nnet.ctc_model import EarlyExitCTC
from speechbrain_ee.nnet.encoder import EarlyExitConformerEncoder, EncoderState
from speechbrain_ee.nnet.frontend import MaskedConvFrontEnd
from speechbrain_ee.nnet.heads import ExitHeads

__all__ = ["EarlyExitCTC", "EarlyExitConformerEncoder", "EncoderState", "MaskedConvFrontEnd", "ExitHeads"]
