"""Per-exit ONNX export of an early-exit Conformer-CTC model.

:func:`export_onnx` writes a deployment folder that
:mod:`speechbrain_ee.runtime` runs without PyTorch:

* ``features.npz``: what the numpy filterbank needs (the analysis window,
  the mel matrix of SpeechBrain's ``Filterbank``, hop, ``top_db``...);
* ``frontend.onnx``: ``fbank (1, T, n_mels)`` -> global normalisation,
  conv sub-sampling and input projection -> ``hidden (1, T', d)`` and the
  relative position embeddings ``pos_embs (1, 2T'-1, d)``;
* ``exit_<k>.onnx`` for every exit ``k``: the layers between exit ``k-1``
  and exit ``k``, that exit's LayerNorm and CTC head -> ``hidden`` (not for
  the last exit) and ``log_probs (1, T', classes)``. A run that stops at
  exit ``k`` never loads nor runs the graphs above it;
* ``tokenizer.model`` (SentencePiece), ``deployment.json`` (exit layers,
  blank index, sample rate, the selector settings) and ``manifest.json``
  (sha256 and size of every file).

The time axis is dynamic; batch 1. ``int8=True`` quantizes the MatMul/Gemm
weights of the segment graphs with onnxruntime's dynamic quantization
(:func:`quantize_folder`), keeping the CTC heads and the front-end graph
(conv sub-sampling and input projection) in float unless told otherwise: on
the AN4 test set, an int8 input projection costs exit 1 about 0.5 WER points
(``benchmarks/export_latency.py`` measures it), for 0.3 MB.
"""

import copy
import hashlib
import json
import logging
import os
import shutil

import numpy
import torch
from speechbrain.processing.features import Filterbank

FORMAT_VERSION = 1
OPSET = 17
DEPLOYMENT_FILE = "deployment.json"
MANIFEST_FILE = "manifest.json"


class FrontEndGraph(torch.nn.Module):
    """Normalised filterbanks -> first encoder states and position embeddings
    (batch 1, no padding: every frame is real)."""

    def __init__(self, encoder, mean, std):
        super().__init__()
        self.blocks = torch.nn.ModuleList(encoder.frontend.cnn.children())
        self.input_projection = encoder.input_projection
        self.positional_encoding = encoder.positional_encoding
        self.register_buffer("mean", mean.reshape(1, 1, -1).float().clone())
        self.register_buffer("std", std.reshape(1, 1, -1).float().clone())

    def forward(self, fbank):
        """``fbank`` (1, T, n_mels) -> ``hidden`` (1, T', d), ``pos_embs`` (1, 2T'-1, d)."""
        x = (fbank - self.mean) / self.std
        for block in self.blocks:
            x = block(x)
        hidden = self.input_projection(x.flatten(start_dim=2))
        return hidden, self.positional_encoding(hidden)


class SegmentGraph(torch.nn.Module):
    """The layers of one exit segment, that exit's norm and its CTC head."""

    def __init__(self, model, exit_index):
        super().__init__()
        encoder = model.encoder
        first = 0 if exit_index == 0 else encoder.exit_layers[exit_index - 1]
        self.layers = torch.nn.ModuleList(encoder.layers[first:encoder.exit_layers[exit_index]])
        self.norm = encoder.exit_norms[exit_index]
        self.head = model.heads.linears[0 if model.heads.shared else exit_index]
        self.last = exit_index == encoder.num_exits - 1

    def forward(self, hidden, pos_embs):
        """``hidden`` (1, T', d), ``pos_embs`` -> (``hidden``,) ``log_probs`` (1, T', classes)."""
        for layer in self.layers:
            hidden, _ = layer(hidden, src_key_padding_mask=None, pos_embs=pos_embs)
        log_probs = torch.log_softmax(self.head(self.norm(hidden)), dim=-1)
        return log_probs if self.last else (hidden, log_probs)


def feature_settings(compute_features):
    """What the numpy filterbank of :mod:`speechbrain_ee.runtime.features`
    needs to reproduce SpeechBrain's ``Fbank`` ``compute_features``: its
    window, its mel matrix (taken from SpeechBrain's ``Filterbank`` on the
    identity spectrogram) and its settings.

    Example
    -------
    >>> from speechbrain.lobes.features import Fbank
    >>> settings = feature_settings(Fbank(n_mels=40))
    >>> settings["window"].shape, settings["mel_matrix"].shape, int(settings["hop_length"])
    ((400,), (201, 40), 160)
    """
    stft, fbanks = compute_features.compute_STFT, compute_features.compute_fbanks
    unsupported = []
    if getattr(compute_features, "deltas", False) or getattr(compute_features, "context", False):
        unsupported.append("deltas/context")
    if not (stft.center and stft.pad_mode == "constant" and stft.onesided and not stft.normalized_stft):
        unsupported.append("STFT other than centred, zero-padded, one-sided, unnormalised")
    if stft.win_length != stft.n_fft:
        unsupported.append(f"win_length {stft.win_length} != n_fft {stft.n_fft}")
    if not fbanks.log_mel or fbanks.power_spectrogram != 2:
        unsupported.append("filterbanks other than log-mel of the power spectrum")
    if unsupported:
        raise ValueError(f"cannot export these features to numpy: {', '.join(unsupported)}")
    linear = Filterbank(
        n_mels=fbanks.n_mels, log_mel=False, filter_shape=fbanks.filter_shape, f_min=fbanks.f_min,
        f_max=fbanks.f_max, n_fft=fbanks.n_fft, sample_rate=fbanks.sample_rate,
    ).eval()
    with torch.no_grad():
        mel_matrix = linear(torch.eye(fbanks.n_stft)[None])[0]
    return {
        "window": stft.window.float().numpy(),
        "mel_matrix": mel_matrix.float().numpy(),
        "n_fft": numpy.int64(stft.n_fft),
        "hop_length": numpy.int64(stft.hop_length),
        "amin": numpy.float64(fbanks.amin),
        "top_db": numpy.float64(fbanks.top_db),
        "db_offset": numpy.float64(fbanks.multiplier * fbanks.db_multiplier),
        "multiplier": numpy.float64(fbanks.multiplier),
    }


def normalization_stats(normalize, n_feats):
    """``(mean, std)`` of a global SpeechBrain ``InputNormalization`` as it
    divides at inference (std clamped), or identity for none."""
    if normalize is None:
        return torch.zeros(n_feats), torch.ones(n_feats)
    if normalize.norm_type != "global":
        raise ValueError(
            f"only global input normalisation exports (norm_type is {normalize.norm_type!r})"
        )
    mean = normalize.glob_mean.reshape(-1)
    std = normalize.glob_std.reshape(-1) if normalize.std_norm else torch.ones_like(mean)
    return mean, std.clamp(min=normalize.epsilon)


def check_exportable(model):
    """Clear error for models the per-exit graphs do not cover."""
    if not hasattr(model, "encoder") or not hasattr(model.encoder, "exit_norms"):
        raise ValueError(f"ONNX export covers early-exit Conformer-CTC models, not {type(model).__name__}")
    if getattr(model, "conditioning", None) is not None:
        raise ValueError("ONNX export does not cover self-conditioned CTC models")
    if model.encoder.attention_type != "RelPosMHAXL":
        raise ValueError(f"ONNX export needs RelPosMHAXL attention, not {model.encoder.attention_type}")


def export_graphs(model, mean, std, folder, n_feats, example_frames=200):
    """Writes ``frontend.onnx`` and ``exit_<k>.onnx`` into ``folder``;
    returns their file names."""
    check_exportable(model)
    model = model.eval()
    names = []
    fbank = torch.randn(1, example_frames, n_feats)
    with torch.no_grad():
        frontend = FrontEndGraph(model.encoder, mean, std).eval()
        hidden, pos_embs = frontend(fbank)
        _export(frontend, (fbank,), os.path.join(folder, "frontend.onnx"), ["fbank"],
                ["hidden", "pos_embs"], {"fbank": {1: "frames"}, "hidden": {1: "steps"},
                                         "pos_embs": {1: "positions"}})
        names.append("frontend.onnx")
        for exit_index in range(model.encoder.num_exits):
            segment = SegmentGraph(model, exit_index).eval()
            outputs = ["log_probs"] if segment.last else ["hidden_out", "log_probs"]
            name = f"exit_{exit_index}.onnx"
            _export(segment, (hidden, pos_embs), os.path.join(folder, name), ["hidden", "pos_embs"],
                    outputs, {k: {1: "steps"} for k in ["hidden", *outputs]} | {"pos_embs": {1: "positions"}})
            names.append(name)
            if not segment.last:
                hidden = segment(hidden, pos_embs)[0]
    return names


def _export(module, args, path, input_names, output_names, dynamic_axes):
    import warnings

    with warnings.catch_warnings():
        # the TorchScript exporter's notes (strided slices not folded, its deprecation)
        warnings.simplefilter("ignore")
        _export_quietly(module, args, path, input_names, output_names, dynamic_axes)


def _export_quietly(module, args, path, input_names, output_names, dynamic_axes):
    torch.onnx.export(module, args, path, input_names=input_names, output_names=output_names,
                      dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False,
                      do_constant_folding=True)


def quantize_folder(folder, graph_names, float_heads=True):
    """Replaces every graph of ``folder`` by its onnxruntime dynamic int8
    quantization (MatMul/Gemm weights, per channel); with ``float_heads`` the
    CTC heads (nodes under ``/head/``) stay in float."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime's "consider pre-processing" warning, once per graph
    try:
        for name in graph_names:
            quantize_graph(os.path.join(folder, name), float_heads)
    finally:
        root.setLevel(level)


def quantize_graph(path, float_heads=True):
    """Dynamic int8 quantization of the MatMul/Gemm weights of the graph at
    ``path``, in place (the head's nodes excluded with ``float_heads``)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    excluded = [node.name for node in onnx.load(path).graph.node
                if float_heads and node.name.startswith("/head/")]
    quantized = path + ".int8"
    quantize_dynamic(path, quantized, weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=excluded)
    os.replace(quantized, path)


def compact_names(path):
    """Rewrites the graph at ``path`` with short node and tensor names (the
    exporter's scoped names are ~70 kB per graph, a tenth of an int8
    segment); the graph's input and output names are kept."""
    import onnx

    model = onnx.load(path)
    graph = model.graph
    kept = {v.name for v in graph.input} | {v.name for v in graph.output}
    renamed = {}

    def short(name):
        if not name or name in kept:
            return name
        if name not in renamed:
            renamed[name] = format(len(renamed), "x")
        return renamed[name]

    for index, node in enumerate(graph.node):
        node.name = f"n{index:x}"
        node.input[:] = [short(name) for name in node.input]
        node.output[:] = [short(name) for name in node.output]
        node.doc_string = ""
    for tensor in graph.initializer:
        tensor.name = short(tensor.name)
    for info in graph.value_info:
        info.name = short(info.name)
    onnx.save(model, path)


def quantize_torch_model(model, float_heads=True):
    """PyTorch counterpart of the int8 export: a copy of ``model`` with its
    ``nn.Linear`` layers dynamically quantized to int8
    (``torch.ao.quantization.quantize_dynamic``), the CTC heads kept in
    float when ``float_heads``. Runs on CPU, in eval mode.

    Example
    -------
    >>> from speechbrain_ee.nnet import EarlyExitConformerEncoder, EarlyExitCTC, ExitHeads, MaskedConvFrontEnd
    >>> enc = EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (4, 4)), d_model=16,
    ...     nhead=2, d_ffn=32, num_layers=4, exit_layers=[2, 4])
    >>> q = quantize_torch_model(EarlyExitCTC(enc, ExitHeads(16, 11, 2)))
    >>> with torch.no_grad():
    ...     q(torch.rand(1, 40, 20), torch.tensor([40]))[0][1].shape
    torch.Size([1, 10, 11])
    >>> type(q.heads.linears[0]).__name__, type(q.encoder.layers[0].mha_layer.linear_pos).__name__
    ('Linear', 'Linear')
    """
    import warnings

    model = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice
        if float_heads:
            model.encoder = torch.ao.quantization.quantize_dynamic(model.encoder, {torch.nn.Linear}, torch.qint8)
        else:
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, torch.qint8)
    return model


def sha256(path):
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder):
    """Writes ``manifest.json``: sha256 and size of every other file of ``folder``."""
    files = {
        name: {"sha256": sha256(os.path.join(folder, name)), "bytes": os.path.getsize(os.path.join(folder, name))}
        for name in sorted(os.listdir(folder)) if name != MANIFEST_FILE
    }
    with open(os.path.join(folder, MANIFEST_FILE), "w") as handle:
        json.dump({"format_version": FORMAT_VERSION, "files": files}, handle, indent=2)
        handle.write("\n")
    return files


def selector_settings(selector):
    """``{"name", "parameter", "value"}`` of a selector the runtime implements
    (fixed, budget, entropy, agreement, patience), or None.

    Example
    -------
    >>> from speechbrain_ee.selection.selectors import EntropySelector
    >>> selector_settings(EntropySelector(0.01))
    {'name': 'entropy', 'parameter': 'threshold', 'value': 0.01}
    """
    from speechbrain_ee.selection.selectors import SELECTORS

    if selector is None:
        return None
    names = {cls: name for name, cls in SELECTORS.items()}
    name = names.get(type(selector))
    if name not in ("fixed", "budget", "entropy", "agreement", "patience"):
        raise ValueError(f"the runtime has no {type(selector).__name__}: choose another default selector")
    return {"name": name, "parameter": selector.parameter, "value": getattr(selector, selector.parameter)}


def export_model(model, compute_features, normalize, tokenizer_file, folder, *, exit_layers, blank_index,
                 sample_rate, selector=None, int8=False, float_heads=True, float_frontend=True,
                 overwrite=False):
    """Writes the deployment folder of an in-memory model (see the module
    docstring); returns the manifest's ``files`` mapping."""
    if os.path.exists(folder) and os.listdir(folder):
        if not overwrite:
            raise FileExistsError(f"output folder is not empty: {folder} (use overwrite)")
        shutil.rmtree(folder)
    os.makedirs(folder, exist_ok=True)
    settings = feature_settings(compute_features)
    n_feats = settings["mel_matrix"].shape[1]
    numpy.savez_compressed(os.path.join(folder, "features.npz"), **settings)
    mean, std = normalization_stats(normalize, n_feats)
    graphs = export_graphs(model, mean, std, folder, n_feats)
    if int8:
        quantize_folder(folder, graphs[1:] if float_frontend else graphs, float_heads=float_heads)
    for name in graphs:
        compact_names(os.path.join(folder, name))
    shutil.copyfile(tokenizer_file, os.path.join(folder, "tokenizer.model"))
    deployment = {
        "format_version": FORMAT_VERSION,
        "sample_rate": int(sample_rate),
        "exit_layers": [int(e) for e in exit_layers],
        "blank_index": int(blank_index),
        "frontend": "frontend.onnx",
        "segments": graphs[1:],
        "int8": bool(int8),
        "float_heads": bool(float_heads) if int8 else None,
        "float_frontend": bool(float_frontend) if int8 else None,
        "selector": selector_settings(selector),
    }
    with open(os.path.join(folder, DEPLOYMENT_FILE), "w") as handle:
        json.dump(deployment, handle, indent=2)
        handle.write("\n")
    return write_manifest(folder)


def export_model_dir(model_dir, folder, int8=False, float_heads=True, float_frontend=True, overwrite=False):
    """Exports the model directory ``model_dir`` (as
    ``speechbrain_ee.recipe.export_pretrained`` writes it) to ``folder``;
    its calibrated ``selector.yaml`` (if any) becomes the default selector."""
    from speechbrain_ee.checkpoints import load_model_dir
    from speechbrain_ee.selection.calibrate import CALIBRATION_FILE, load_selector

    hparams = load_model_dir(model_dir)
    calibrated = os.path.join(model_dir, CALIBRATION_FILE)
    selector = hparams.get("selector")
    if selector is None and os.path.isfile(calibrated):
        selector = load_selector(calibrated)
    model = hparams["model"]
    return export_model(
        model, hparams["compute_features"], hparams.get("normalize"),
        os.path.join(model_dir, "tokenizer.model"), folder, exit_layers=model.exit_layers,
        blank_index=hparams["blank_index"], sample_rate=hparams["sample_rate"], selector=selector,
        int8=int8, float_heads=float_heads, float_frontend=float_frontend, overwrite=overwrite,
    )
