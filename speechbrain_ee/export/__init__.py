"""Exporting early-exit models for deployment without PyTorch
(:mod:`speechbrain_ee.export.onnx`; command line: :mod:`speechbrain_ee.export.cli`)."""
