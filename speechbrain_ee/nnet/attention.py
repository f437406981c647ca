"""Faster relative-position self-attention with SpeechBrain's parameters.

SpeechBrain's :class:`~speechbrain.nnet.attention.RelPosMHAXL` (Transformer-XL
attention, used by its Conformer) computes the content scores, the position
scores, the masks and the softmax as separate full-size tensor operations,
multiplies the queries by the full ``(T, 2T-1)`` table of relative positions
and realigns the result with a pad/view/slice copy (``rel_shift``).
:class:`FastRelPosMHAXL` keeps the same parameters, state_dict keys and
numerics (float rounding aside) but

* adds ``pos_bias_u`` through the bias of the input projection and hands the
  content scores, the softmax and the weighted sum of the values to one fused
  :func:`torch.nn.functional.scaled_dot_product_attention` call, whose
  additive ``attn_mask`` carries the position scores and the masks;
* computes the position scores in row blocks that each multiply only the
  band of relative positions they need (about 0.6 of the ``T x (2T-1)``
  product at ``T = 250``) and realigns them with a zero-copy
  flatten/slice/reshape (:func:`rel_shift_reshape`: ops ONNX expresses,
  so the layer exports; while exporting, one block covers all rows);
* without autograd (inference), reuses the projected position table
  ``linear_pos(pos_embs)`` while the weights and the position embeddings are
  unchanged (shorter inputs reuse the centre of a longer table; see
  :class:`PositionTables`).

The attention weights are not materialised: the second output is ``None``.
Cases the fused path does not cover (cross-attention, causal
``mask_pos_future``, a separate value dimension, ``need_weights = True``)
run SpeechBrain's implementation.
"""

import weakref

import torch
from speechbrain.nnet.attention import RelPosMHAXL


def rel_shift_view(scores, qlen=None):
    """Zero-copy equivalent of ``RelPosMHAXL.rel_shift`` (non-causal).

    Arguments
    ---------
    scores : torch.Tensor
        Position scores ``(..., n, K + n - 1)`` of ``n`` consecutive query
        rows against a band of relative positions, in ``RelPosEncXL`` order
        (past first). For a whole ``(T, 2T-1)`` table, ``n = K = T``.
    qlen : int, optional
        Number of keys ``K`` (default: the number of rows).

    Returns
    -------
    torch.Tensor
        ``(..., n, K)`` view whose entry ``[i, j]`` is ``scores[i, n-1-i+j]``.

    Example
    -------
    >>> scores = torch.arange(15.0).view(3, 5)
    >>> rel_shift_view(scores)
    tensor([[ 2.,  3.,  4.],
            [ 6.,  7.,  8.],
            [10., 11., 12.]])
    """
    rows, width = scores.shape[-2:]
    klen = rows if qlen is None else qlen
    if width != klen + rows - 1:
        raise ValueError(
            f"position scores of shape {tuple(scores.shape)}: expected (..., n, {klen} + n - 1)"
        )
    *outer, row_stride, col_stride = scores.stride()
    return scores.as_strided(
        (*scores.shape[:-2], rows, klen),
        (*outer, row_stride - col_stride, col_stride),
        scores.storage_offset() + (rows - 1) * col_stride,
    )


def rel_shift_reshape(scores, qlen=None, padded=False):
    """:func:`rel_shift_view` written with flatten, slice and reshape only.

    Entry ``[i, j]`` of the ``(n, W)`` scores (``W = K + n - 1``) sits at
    ``(n - 1) + i (W - 1) + j`` of the flattened rows, so the realigned
    scores are a slice of the flattened tensor read with row length
    ``W - 1``: no copy in PyTorch, and ops (Reshape, Slice) that ONNX
    expresses, unlike ``as_strided``. One query row (``W - 1 < K``), and
    every input while tracing for an export (where the row count is not
    known in advance), needs a zero column on the right: a copy, unless the
    caller computed the scores with it (``padded``).

    Arguments
    ---------
    scores, qlen
        As :func:`rel_shift_view`.
    padded : bool
        ``scores`` already end with a zero column, ``(..., n, K + n)``
        (cheaper: pad the position keys before the product).

    Returns
    -------
    torch.Tensor
        ``(..., n, K)``, equal to :func:`rel_shift_view` (a view when ``n > 1``
        and ``scores`` is contiguous).

    Example
    -------
    >>> scores = torch.arange(15.0).view(3, 5)
    >>> torch.equal(rel_shift_reshape(scores), rel_shift_view(scores))
    True
    >>> rel_shift_reshape(torch.arange(3.0).view(1, 3), qlen=3)
    tensor([[0., 1., 2.]])
    >>> torch.equal(rel_shift_reshape(torch.nn.functional.pad(scores, (0, 1)), padded=True),
    ...             rel_shift_view(scores))
    True
    """
    rows, width = scores.shape[-2:]
    klen = rows if qlen is None else qlen
    tracing = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
    if not tracing and width != klen + rows - 1 + int(padded):
        raise ValueError(
            f"position scores of shape {tuple(scores.shape)}: expected (..., n, {klen} + n - 1)"
            + (" + 1 (padded)" if padded else "")
        )
    # entry [i, j] sits at (n - 1) + i * stride + j, stride = W (the row length less one)
    stride = width - 1
    if not padded and (tracing or rows < 2):
        scores = torch.nn.functional.pad(scores, (0, 1))
        stride = width
    outer = scores.shape[:-2]
    flat = scores.reshape(*outer, -1)[..., rows - 1:rows - 1 + rows * stride]
    return flat.reshape(*outer, rows, stride)[..., :klen]


class PositionTables:
    """Canonical copies of the relative position embeddings seen at inference.

    The layers of an encoder all receive the same ``pos_embs`` tensor: the
    first layer compares it with the last canonical copy (one
    ``torch.equal``; a shorter input is compared with the centre of a longer
    copy), the others recognise it by identity (and version, for tensors
    that have one); every layer then keys its projected table on the
    canonical copy. One copy is kept per (embedding size, dtype, device).

    Example
    -------
    >>> tables = PositionTables()
    >>> long, short = torch.arange(5.0).view(1, 5, 1), torch.arange(1.0, 4.0).view(1, 3, 1)
    >>> table, offset = tables.lookup(long)
    >>> tables.lookup(short) == (table, 1)
    True
    """

    def __init__(self):
        self._last = {}

    def lookup(self, pos_embs):
        """``(table, offset)`` with ``table[:, offset:offset + len] == pos_embs``."""
        group = (pos_embs.shape[-1], pos_embs.dtype, pos_embs.device)
        version = None if pos_embs.is_inference() else pos_embs._version
        last = self._last.get(group)
        if last is not None:
            seen, seen_version, table, offset = last
            if seen() is pos_embs and seen_version == version:
                return table, offset
            offset = (table.shape[1] - pos_embs.shape[1]) // 2
            if offset < 0 or not torch.equal(table[:, offset:offset + pos_embs.shape[1]], pos_embs):
                last = None
        if last is None:
            table, offset = pos_embs.clone(), 0
        self._last[group] = (weakref.ref(pos_embs), version, table, offset)
        return table, offset


def weight_key(linear):
    """``(key, owner)`` identifying the current weights of ``linear`` for a
    cache: a float ``nn.Linear`` by its weight's storage and version, a
    dynamically quantized one (``torch.ao.nn.quantized.dynamic.Linear``,
    whose ``weight`` is a method) by its packed parameters, which quantizing
    or loading weights replaces (``owner`` keeps them alive so that their id
    stays theirs). ``key`` is None when the weights cannot be tracked
    (inference tensors): do not cache.

    Example
    -------
    >>> linear = torch.nn.Linear(4, 4)
    >>> key, _ = weight_key(linear)
    >>> with torch.no_grad():
    ...     _ = linear.weight.add_(1)
    >>> weight_key(linear)[0] != key
    True
    >>> q = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear})
    >>> weight_key(q[0])[0][0]
    'packed'
    """
    weight = linear.weight
    if isinstance(weight, torch.Tensor):
        if weight.is_inference():
            return None, None
        return (weight.data_ptr(), weight._version, weight.device, weight.dtype), None
    packed = linear._packed_params._packed_params
    return ("packed", id(packed)), packed


#: shared by all :class:`FastRelPosMHAXL` modules
POSITION_TABLES = PositionTables()


class FastRelPosMHAXL(RelPosMHAXL):
    """Drop-in :class:`RelPosMHAXL` for self-attention using fused SDPA.

    Same constructor, parameters and state_dict keys as SpeechBrain's class,
    so checkpoints load unchanged; outputs agree to float rounding. The
    second output (attention weights) is ``None`` on the fused path; set
    ``need_weights = True`` to get SpeechBrain's computation with weights.

    Arguments
    ---------
    As :class:`RelPosMHAXL`.

    Example
    -------
    >>> x = torch.rand(2, 10, 16)
    >>> pos = torch.rand(1, 19, 16)
    >>> fast, slow = FastRelPosMHAXL(16, 4), RelPosMHAXL(16, 4)
    >>> _ = slow.load_state_dict(fast.state_dict())
    >>> out, weights = fast(x, x, x, pos)
    >>> torch.allclose(out, slow(x, x, x, pos)[0], atol=1e-6), weights
    (True, None)
    """

    #: True: compute SpeechBrain's way, with the attention weights
    need_weights = False
    #: reuse the projected position table when autograd is off (each module
    #: keeps the table of the longest input seen: 2 x (2T-1) x E floats)
    cache_positions = True
    #: query rows per block of position scores
    block_rows = 64

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._position_cache = None

    @classmethod
    def from_relpos(cls, module):
        """A :class:`FastRelPosMHAXL` that takes over the parameters of the
        :class:`RelPosMHAXL` ``module`` (shared, not copied; no random
        number is drawn, so seeded initialisations stay as they were)."""
        with torch.device("meta"):
            fast = cls(module.embed_dim, module.num_heads, dropout=module.dropout,
                       vbias=module.vbias is not None, vdim=module.vdim,
                       mask_pos_future=module.mask_pos_future)
        fast.load_state_dict(module.state_dict(), assign=True)
        fast.train(module.training)
        fast.attn_fill_value = module.attn_fill_value
        return fast

    def _fused_path_applies(self, query, key, value):
        return (
            not self.need_weights
            and query is key
            and key is value
            and self._qkv_same_embed_dim
            and not self.mask_pos_future
        )

    def forward(self, query, key, value, pos_embs, key_padding_mask=None, attn_mask=None,
                return_attn_weights=True):
        """Self-attention of ``query`` (B, T, E) with relative positions
        ``pos_embs`` (1, 2T-1, E); masks as in :class:`RelPosMHAXL`.

        Returns ``(output, None)`` (``output`` alone when
        ``return_attn_weights`` is False)."""
        if not self._fused_path_applies(query, key, value):
            return super().forward(query, key, value, pos_embs, key_padding_mask, attn_mask,
                                   return_attn_weights)
        bsz, qlen, _ = query.shape
        heads, head_dim = self.num_heads, self.head_dim
        # SpeechBrain reads its (head_dim, heads) biases as (heads, head_dim)
        bias_u = self.pos_bias_u.view(heads, head_dim)
        in_bias = torch.nn.functional.pad(bias_u, (0, 2 * head_dim)).flatten()
        q_u, k, v = (
            torch.nn.functional.linear(query, self.in_proj_weight, in_bias)
            .view(bsz, qlen, heads, 3 * head_dim)
            .transpose(1, 2)
            .chunk(3, dim=-1)
        )  # each (B, H, T, d); q_u = query + bias_u
        if self.vbias is not None:
            v = v + self.value_bias_weight.view(1, heads, 1, head_dim)
        q_v = q_u + (self.pos_bias_v.view(heads, head_dim) - bias_u).view(1, heads, 1, head_dim)
        padding = None
        if key_padding_mask is not None:
            padding = torch.zeros(bsz, 1, 1, qlen, dtype=q_v.dtype, device=q_v.device)
            padding.masked_fill_(key_padding_mask.view(bsz, 1, 1, qlen), self.attn_fill_value)
        mask = self._position_scores(q_v, self._position_keys(pos_embs), padding)
        if attn_mask is not None:
            self._apply_attn_mask(mask, attn_mask)
        out = torch.nn.functional.scaled_dot_product_attention(
            q_u, k, v, attn_mask=mask, scale=self.scale,
            dropout_p=self.dropout if self.training else 0.0,
        )  # (B, H, T, d)
        out = self.out_proj(out.transpose(1, 2).reshape(bsz, qlen, heads * head_dim))
        return (out, None) if return_attn_weights else out

    def _project_positions(self, pos_embs):
        """``scale * linear_pos(pos_embs)`` as (H, d, 2T-1)."""
        p_k = self.linear_pos(pos_embs * self.scale)
        return p_k.view(-1, self.num_heads * self.head_dim).t().reshape(self.num_heads, self.head_dim, -1)

    def _position_keys(self, pos_embs):
        """Projected, scaled position table; cached when autograd is off,
        keyed on the weight (see :func:`weight_key`) and on the canonical
        copy of the embeddings (see :class:`PositionTables`), so updated
        weights or other embeddings are never served stale."""
        key, owner = weight_key(self.linear_pos)
        if (torch.is_grad_enabled() or not self.cache_positions or key is None
                or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
            return self._project_positions(pos_embs)
        table, offset = POSITION_TABLES.lookup(pos_embs)
        cache = self._position_cache
        if cache is None or cache[0] != key or cache[1] is not table:
            cache = self._position_cache = (key, table, self._project_positions(table), owner)
        return cache[2][..., offset:offset + pos_embs.shape[1]]

    def _position_scores(self, q_v, p_k, padding=None):
        """Realigned position scores (B, H, T, T) plus the additive key
        ``padding`` (B, 1, 1, T): entry ``[i, j]`` is ``q_v[i] . p_k[:, T-1-i+j]``,
        computed block of rows by block of rows on the band of relative
        positions each block needs (one block while exporting: the graph
        then holds for any length)."""
        bsz, heads, qlen, _ = q_v.shape
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            # the zero column goes on the keys (H, d, 2T-1), not on the scores (B, H, T, 2T-1)
            scores = rel_shift_reshape(torch.matmul(q_v, torch.nn.functional.pad(p_k, (0, 1))), qlen,
                                       padded=True)
            return scores if padding is None else scores + padding
        scores = q_v.new_empty(bsz, heads, qlen, qlen)
        for start in range(0, qlen, self.block_rows):
            stop = min(start + self.block_rows, qlen)
            band = p_k[..., qlen - stop:2 * qlen - 1 - start]  # (H, d, T + n - 1)
            block = rel_shift_reshape(torch.matmul(q_v[:, :, start:stop], band), qlen)
            if padding is None:
                scores[:, :, start:stop] = block
            elif torch.is_grad_enabled():  # out= does not support autograd
                scores[:, :, start:stop] = block + padding
            else:
                torch.add(block, padding, out=scores[:, :, start:stop])
        return scores

    def _apply_attn_mask(self, scores, attn_mask):
        """Folds ``attn_mask`` (as in :class:`RelPosMHAXL`) into ``scores`` in place."""
        bsz, heads, qlen, klen = scores.shape
        if attn_mask.ndim == 2:
            attn_mask = attn_mask.view(1, 1, qlen, klen)
        else:
            attn_mask = attn_mask.view(-1, heads, qlen, klen)
        if attn_mask.dtype == torch.bool:
            scores.masked_fill_(attn_mask, self.attn_fill_value)
        else:
            scores.add_(attn_mask)
