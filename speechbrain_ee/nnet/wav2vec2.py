"""Early-exit CTC on a pre-trained wav2vec 2.0 (Hugging Face ``transformers``).

The pre-trained model is loaded with ``Wav2Vec2Model.from_pretrained`` (a
local ``save_pretrained`` directory, or a hub id when online). Instead of
asking it for all hidden states, :class:`Wav2Vec2ExitEncoder` runs its
pieces itself (CNN feature encoder, feature projection, positional
convolution, then the transformer layers one by one), so a caller that stops
at exit ``k`` computes no layer above it. It honours the attention mask and
the layer-norm placement of both wav2vec2 variants:

* ``do_stable_layer_norm=False`` (wav2vec2-base): post-LN layers, the
  encoder's ``layer_norm`` applied once before the first layer. Every layer
  output is already layer-normalised, so exit ``k`` reads HF's
  ``hidden_states[k]`` as it is (no extra norm).
* ``do_stable_layer_norm=True`` (wav2vec2-large-lv60, XLS-R): pre-LN layers
  whose outputs are the un-normalised residual stream; HF normalises only
  the last one (``encoder.layer_norm``). Each exit gets its own LayerNorm,
  initialised as a copy of that pre-trained final norm, so the last exit
  starts equal to HF's ``last_hidden_state``.

SpeechBrain's :class:`speechbrain.integrations.huggingface.wav2vec2.Wav2Vec2`
is not used as the base: it calls the whole HF model (no early stop), needs
a ``preprocessor_config.json`` and normalises the waveform over the padded
batch. Its behaviour is kept where it matters: frozen CNN feature extractor,
padding mask passed to the transformer, per-utterance waveform normalisation
(here over the real samples only, as HF's ``Wav2Vec2FeatureExtractor``).

With ``feat_extract_norm="layer"`` (large/stable models) an utterance gets
the same outputs alone or padded in a batch. wav2vec2-base's first CNN layer
normalises over time (GroupNorm), padding included, so there a batch changes
the features of its shorter utterances slightly, exactly as in HF.

The exit heads are :class:`~speechbrain_ee.nnet.heads.ExitHeads`: one
separate Linear per exit (the paper's public code accidentally shares a
single head between all exits), each after a dropout as HF's
``Wav2Vec2ForCTC``.
"""

import copy
import os
from dataclasses import replace

import torch
from transformers import Wav2Vec2Config, Wav2Vec2Model
from transformers.masking_utils import create_bidirectional_mask

from speechbrain_ee.nnet.ctc_model import EarlyExitCTC
from speechbrain_ee.nnet.encoder import EarlyExitConformerEncoder, EncoderState
from speechbrain_ee.nnet.lengths import length_mask
from speechbrain_ee.nnet.heads import ExitHeads
from speechbrain_ee.nnet.lengths import as_counts, check_exit_layers


class Wav2Vec2LoadError(OSError):
    """A wav2vec2 source that cannot be loaded (missing folder, no config...)."""


def _looks_like_path(source):
    """True when ``source`` can only be meant as a local path (a hub id is
    ``name`` or ``owner/name``)."""
    return source.startswith(("/", ".")) or source.count("/") > 1 or (os.sep != "/" and os.sep in source)


def load_wav2vec2(source, pretrained=True, **config_overrides):
    """Loads a :class:`transformers.Wav2Vec2Model`.

    Arguments
    ---------
    source : str
        Local directory written by ``save_pretrained`` (``config.json`` and
        the weights), or a Hugging Face hub id (needs internet access or a
        filled HF cache).
    pretrained : bool
        False builds the model from ``config.json`` only, with random
        weights (for a fine-tuned checkpoint that is loaded afterwards, or
        for timing).
    **config_overrides
        Config values to change, e.g. ``layerdrop=0.0``, ``mask_time_prob=0.05``.

    Raises
    ------
    Wav2Vec2LoadError
        With the path/id in the message, when the source cannot be loaded.
    """
    source = os.path.expanduser(str(source))
    is_dir = os.path.isdir(source)
    if is_dir and not os.path.isfile(os.path.join(source, "config.json")):
        raise Wav2Vec2LoadError(
            f"wav2vec2 source {source!r} is a directory without config.json: "
            "give a folder written by Wav2Vec2Model.save_pretrained"
        )
    if not is_dir and _looks_like_path(source):
        raise Wav2Vec2LoadError(f"wav2vec2 source directory not found: {source!r}")
    try:
        if pretrained:
            return Wav2Vec2Model.from_pretrained(source, **config_overrides)
        config = Wav2Vec2Config.from_pretrained(source, **config_overrides)
        return Wav2Vec2Model(config)
    except (OSError, ValueError) as err:
        where = (
            f"local directory {source!r}" if is_dir else
            f"{source!r}: it is not a local directory, and as a Hugging Face hub id it "
            "needs internet access (or the model in the HF cache); point the source "
            "to a folder written by save_pretrained"
        )
        raise Wav2Vec2LoadError(f"could not load wav2vec2 from {where} ({err})") from err


def normalize_waveforms(wavs, lengths, eps=1e-7):
    """Zero mean, unit variance per utterance over its real samples, padding
    set to zero (what HF's ``Wav2Vec2FeatureExtractor(do_normalize=True)``
    does for wav2vec2-base and -large-lv60).

    Example
    -------
    >>> out = normalize_waveforms(torch.tensor([[1.0, 3.0, 9.0]]), torch.tensor([2]))
    >>> out.round(decimals=4).tolist()
    [[-1.0, 1.0, 0.0]]
    """
    mask = length_mask(lengths, wavs.shape[1]).to(wavs.dtype)
    count = mask.sum(1, keepdim=True).clamp(min=1)
    mean = (wavs * mask).sum(1, keepdim=True) / count
    var = (((wavs - mean) * mask) ** 2).sum(1, keepdim=True) / count
    return (wavs - mean) / torch.sqrt(var + eps) * mask


class Wav2Vec2ExitEncoder(torch.nn.Module):
    """A pre-trained wav2vec2 run layer by layer, with exits after chosen layers.

    Same incremental interface as
    :class:`~speechbrain_ee.nnet.encoder.EarlyExitConformerEncoder`:
    ``start(wavs, sample_counts)`` runs the CNN, the projection and the
    positional convolution (depth 0); ``advance(state, exit_index)`` runs only
    the layers up to that exit.

    Arguments
    ---------
    source : str
        See :func:`load_wav2vec2`.
    exit_layers : list of int, optional
        1-based transformer layers after which an exit sits (default: every
        second layer). Layers above the last exit are dropped.
    freeze_feature_extractor : bool
        Keep the CNN feature encoder frozen (no gradient, eval mode), as in
        the wav2vec 2.0 fine-tuning recipe.
    normalize_wav : bool
        Normalise each waveform (see :func:`normalize_waveforms`); True for
        the official wav2vec2 models.
    exit_dropout : float, optional
        Dropout on each exit output before its head; default: the config's
        ``final_dropout``, as HF's ``Wav2Vec2ForCTC`` (and the paper's code).
    pretrained : bool
        False: architecture from ``config.json`` only, random weights.
    config_overrides : dict, optional
        Passed to :func:`load_wav2vec2` (e.g. ``{"layerdrop": 0.0}``).
    """

    # Exit bookkeeping and the full forward (start + advance per exit) are the
    # Conformer encoder's: they only use ``exit_layers``, ``start`` and ``advance``.
    num_exits = EarlyExitConformerEncoder.num_exits
    check_exit = EarlyExitConformerEncoder.check_exit
    forward = EarlyExitConformerEncoder.forward

    def __init__(self, source, exit_layers=None, freeze_feature_extractor=True,
                 normalize_wav=True, exit_dropout=None, pretrained=True, config_overrides=None):
        super().__init__()
        wav2vec2 = load_wav2vec2(source, pretrained=pretrained, **dict(config_overrides or {}))
        config = wav2vec2.config
        if config.add_adapter:
            raise ValueError(f"wav2vec2 {source!r}: models with an adapter (add_adapter=True) are not supported")
        num_layers = config.num_hidden_layers
        if exit_layers is None:
            exit_layers = list(range(2, num_layers + 1, 2))
        exit_layers = check_exit_layers(exit_layers, num_layers, where=f" (layers of {source!r})")
        del wav2vec2.encoder.layers[exit_layers[-1]:]
        self.exit_layers = exit_layers
        self.wav2vec2 = wav2vec2
        self.hidden_size = config.hidden_size
        self.stable_layer_norm = bool(config.do_stable_layer_norm)
        self.normalize_wav = normalize_wav
        self.freeze_feature_extractor = freeze_feature_extractor
        if freeze_feature_extractor:
            wav2vec2.freeze_feature_encoder()
        self.exit_norms = torch.nn.ModuleList(
            copy.deepcopy(wav2vec2.encoder.layer_norm) if self.stable_layer_norm else torch.nn.Identity()
            for _ in exit_layers
        )
        if self.stable_layer_norm:  # replaced by the exit norms
            wav2vec2.encoder.layer_norm.requires_grad_(False)
        self.exit_dropout = torch.nn.Dropout(config.final_dropout if exit_dropout is None else exit_dropout)

    @property
    def layers(self):
        """The transformer layers that are used (up to the last exit)."""
        return self.wav2vec2.encoder.layers

    def train(self, mode=True):
        """As ``nn.Module.train`` but a frozen feature extractor stays in eval mode."""
        super().train(mode)
        if self.freeze_feature_extractor:
            self.wav2vec2.feature_extractor.eval()
        return self

    def output_lengths(self, sample_counts):
        """Frames the CNN gives for each waveform length."""
        return self.wav2vec2._get_feat_extract_output_lengths(sample_counts).long()

    def start(self, wavs, lengths):
        """CNN features, projection and positional convolution: the
        :class:`~speechbrain_ee.nnet.encoder.EncoderState` at depth 0.

        Arguments
        ---------
        wavs : torch.Tensor
            Raw waveforms, (batch, samples).
        lengths : torch.Tensor
            Relative lengths (SpeechBrain's convention) or real sample
            counts (integers).
        """
        lengths = as_counts(lengths, wavs.shape[1])[0]
        if self.normalize_wav:
            wavs = normalize_waveforms(wavs, lengths)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_feature_extractor):
            feats = self.wav2vec2.feature_extractor(wavs).transpose(1, 2)
        out_lengths = self.output_lengths(lengths).clamp(min=0, max=feats.shape[1])
        mask = length_mask(out_lengths, feats.shape[1])
        hidden, _ = self.wav2vec2.feature_projection(feats)
        # SpecAugment-style time masking, in training only when the config asks for it
        hidden = self.wav2vec2._mask_hidden_states(hidden, attention_mask=mask)
        hidden = hidden.masked_fill(~mask[..., None], 0.0)
        encoder = self.wav2vec2.encoder
        hidden = hidden + encoder.pos_conv_embed(hidden)
        if not self.stable_layer_norm:
            hidden = encoder.layer_norm(hidden)
        hidden = encoder.dropout(hidden)
        index = torch.arange(hidden.shape[0], device=hidden.device)
        return EncoderState(hidden, out_lengths, 0, index)

    def advance(self, state, exit_index):
        """Runs the layers up to exit ``exit_index`` (0-based); returns
        ``(new_state, exit_output)``, the exit output being the layer output
        (normalised for the stable-layer-norm variant), after dropout."""
        self.check_exit(exit_index)
        target = self.exit_layers[exit_index]
        if target < state.depth:
            raise ValueError(f"exit {exit_index} (layer {target}) is below the current depth {state.depth}")
        hidden = state.hidden
        if target > state.depth and hidden.shape[0] > 0:
            config = self.wav2vec2.config
            attention_mask = create_bidirectional_mask(
                config=config, inputs_embeds=hidden, attention_mask=~state.padding_mask
            )
            for layer in self.layers[state.depth:target]:
                if self.training and config.layerdrop > 0 and torch.rand([]) < config.layerdrop:
                    continue  # LayerDrop, as in HF's encoder
                hidden = layer(hidden, attention_mask=attention_mask)
        state = replace(state, hidden=hidden, depth=target)
        return state, self.exit_dropout(self.exit_norms[exit_index](hidden))


class EarlyExitWav2Vec2(EarlyExitCTC):
    """Pre-trained wav2vec2 with a separate CTC head per exit.

    The model interface of :class:`~speechbrain_ee.nnet.ctc_model.EarlyExitCTC`
    (``start``/``step``/``forward``), taking raw waveforms and their sample
    counts: ``forward(wavs, sample_counts, max_exit=None) -> (log_probs list,
    frame counts)``.

    Arguments
    ---------
    source : str
        Local ``save_pretrained`` directory or hub id (see :func:`load_wav2vec2`).
    num_classes : int
        CTC outputs, blank included.
    exit_layers : list of int, optional
        Default: every second layer (2, 4, ..., 12 for wav2vec2-base).
    **encoder_kwargs
        Passed to :class:`Wav2Vec2ExitEncoder` (``freeze_feature_extractor``,
        ``normalize_wav``, ``exit_dropout``, ``pretrained``, ``config_overrides``).

    Example
    -------
    >>> import shutil, tempfile
    >>> folder = save_random_wav2vec2(tempfile.mkdtemp(), dict(hidden_size=16,
    ...     num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
    ...     conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4),
    ...     num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2))
    >>> model = EarlyExitWav2Vec2(folder, num_classes=32, exit_layers=[2, 4]).eval()
    >>> log_probs, frames = model(torch.randn(2, 1600), torch.tensor([1600, 800]))
    >>> [lp.shape for lp in log_probs], frames.tolist()
    ([torch.Size([2, 79, 32]), torch.Size([2, 79, 32])], [79, 39])
    >>> shutil.rmtree(folder)
    """

    def __init__(self, source, num_classes, exit_layers=None, **encoder_kwargs):
        encoder = Wav2Vec2ExitEncoder(source, exit_layers=exit_layers, **encoder_kwargs)
        super().__init__(encoder, ExitHeads(encoder.hidden_size, num_classes, encoder.num_exits))

    def export_files(self, folder):
        """For :func:`speechbrain_ee.recipe.export_pretrained`: writes the
        wav2vec2 ``config.json`` to ``folder/wav2vec2`` (the weights are in
        the exported ``model.ckpt``) and returns the overrides of
        ``hparams/wav2vec2_ctc_base.yaml`` that rebuild the model from it, so
        the exported directory does not need the original checkpoint."""
        self.encoder.wav2vec2.config.save_pretrained(os.path.join(folder, "wav2vec2"))
        return {"wav2vec2_source": "!ref <pretrained_path>/wav2vec2", "wav2vec2_pretrained": "False"}


def save_random_wav2vec2(folder, config=None, seed=0):
    """Writes a randomly initialised wav2vec2 to ``folder`` with
    ``save_pretrained`` and returns ``folder`` (tests, smoke runs and timing,
    where no pre-trained weights can be downloaded).

    Arguments
    ---------
    folder : str
        Destination directory.
    config : dict, optional
        :class:`transformers.Wav2Vec2Config` arguments; the defaults are the
        wav2vec2-base architecture (12 layers of 768).
    seed : int
        Seed of the random initialisation (the global RNG is left untouched).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        Wav2Vec2Model(Wav2Vec2Config(**dict(config or {}))).save_pretrained(folder)
    return str(folder)
