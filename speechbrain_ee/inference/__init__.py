"""Inference with early-exit models: dynamic-depth runs and the pretrained interface."""

from speechbrain_ee.inference.decoders import CTCTextDecoder
from speechbrain_ee.inference.dynamic import DynamicResult, run_dynamic
from speechbrain_ee.inference.interfaces import EarlyExitASR, Transcription

__all__ = ["CTCTextDecoder", "DynamicResult", "EarlyExitASR", "Transcription", "run_dynamic"]
