"""Offline exit selection: replay each selector for many thresholds over an
:class:`ExitTable` (every exit decoded once, by
:func:`speechbrain_ee.inference.exit_table.decode_exits`): cheap, no network,
no beam search in the loop.

The replay (:func:`simulate`) calls the very ``start``/``decide`` methods the
online :func:`speechbrain_ee.inference.run_dynamic` calls, on measures
cached by the selectors' own ``measure`` methods, so an offline operating
point is what the online run would give.
"""

import json
from dataclasses import asdict, dataclass, field
from typing import Dict, List

import numpy
import torch

from speechbrain_ee.selection.measures import transcript_distance
from speechbrain_ee.selection.selectors import (
    AgreementSelector,
    ConfidenceSelector,
    EntropySelector,
    FixedExitSelector,
    PatienceSelector,
    oracle_exits,
)


@dataclass
class ExitTable:
    """One decoding pass over all exits of a test set.

    Attributes
    ----------
    ids, references : list of str
        Utterance ids and reference transcripts.
    exit_layers : list of int
        Layer of each exit.
    hypotheses : list of list of str
        ``hypotheses[utt][exit]``.
    word_errors : list of list of int
        Word edit distance to the reference, ``[utt][exit]``.
    ref_words : list of int
        Words in each reference.
    measures : dict
        Selector measure key (``"entropy"``, ``"confidence"``) ->
        ``[utt][exit]`` values (None at the last exit, where nobody is asked).
    """

    ids: List[str]
    references: List[str]
    exit_layers: List[int]
    hypotheses: List[List[str]]
    word_errors: List[List[int]]
    ref_words: List[int]
    measures: Dict[str, list] = field(default_factory=dict)

    @property
    def num_exits(self):
        return len(self.exit_layers)

    def measure(self, key, exit_index, rows):
        """Cached measure ``key`` of utterances ``rows`` at ``exit_index``
        (a tuple of keys: the tuple of their measures)."""
        if key is None:
            return None
        if isinstance(key, tuple):
            return tuple(self.measure(k, exit_index, rows) for k in key)
        if key == "transcript":
            return [self.hypotheses[r][exit_index] for r in rows]
        if key not in self.measures:
            raise KeyError(f"the exit table has no {key!r} measure (decoded with {sorted(self.measures)})")
        return torch.tensor([self.measures[key][r][exit_index] for r in rows], dtype=torch.float64)

    def save(self, path):
        """Writes the table as JSON."""
        with open(path, "w") as handle:
            json.dump(asdict(self), handle)

    @classmethod
    def load(cls, path):
        """Reads a table written by :meth:`save`."""
        with open(path) as handle:
            return cls(**json.load(handle))


def simulate(selector, table):
    """Exit index each utterance of ``table`` gets from ``selector``, with the
    online protocol (``start``, then ``decide`` on the remaining utterances)."""
    first = selector.start(table.exit_layers)
    last = table.num_exits - 1
    exits = numpy.full(len(table.ids), last)
    remaining = numpy.arange(len(table.ids))
    for exit_index in range(first, last):
        if remaining.size == 0:
            break
        measures = table.measure(selector.measure_key, exit_index, remaining)
        stop = selector.decide(exit_index, measures, torch.as_tensor(remaining)).numpy()
        exits[remaining[stop]] = exit_index
        remaining = remaining[~stop]
    return exits


def operating_point(table, exits):
    """WER (%) and mean exit of a per-utterance exit assignment.

    Example
    -------
    >>> t = ExitTable(["a", "b"], ["X Y", "Z"], [2, 4], [["X", "X Y"], ["Z", "Z"]],
    ...               [[1, 0], [0, 0]], [2, 1])
    >>> operating_point(t, numpy.array([1, 0]))
    {'mean_exit_layer': 3.0, 'mean_exit_index': 0.5, 'wer': 0.0, 'errors': 0}
    """
    exits = numpy.asarray(exits)
    errors = numpy.asarray(table.word_errors)[numpy.arange(len(exits)), exits]
    layers = numpy.asarray(table.exit_layers)[exits]
    return {
        "mean_exit_layer": float(layers.mean()),
        "mean_exit_index": float(exits.mean()),
        "wer": 100.0 * float(errors.sum()) / max(1, sum(table.ref_words)),
        "errors": int(errors.sum()),
    }


def subsample(values, max_points):
    """At most ``max_points`` of the sorted unique ``values``, evenly spread, ends kept.

    Example
    -------
    >>> subsample([5, 1, 2, 3, 4, 4], 3).tolist()
    [1.0, 3.0, 5.0]
    """
    values = numpy.unique(numpy.asarray(values, dtype=float))
    if values.size <= max_points:
        return values
    return numpy.unique(values[numpy.linspace(0, values.size - 1, max_points).round().astype(int)])


def threshold_grid(values, max_points=100, low=0.0, high=numpy.inf):
    """Thresholds that separate the observed ``values``: one below all, the
    midpoints between neighbours, one above all (clipped to ``[low, high]``).

    Example
    -------
    >>> threshold_grid([0.2, 0.1, 0.1, 0.4]).tolist()
    [0.0, 0.15000000000000002, 0.30000000000000004, 0.55]
    """
    values = numpy.unique(numpy.asarray([v for v in values if v is not None], dtype=float))
    values = subsample(values[numpy.isfinite(values)], max_points)
    if values.size == 0:
        return numpy.array([low])
    step = (values[-1] - values[0]) / max(1, values.size - 1) or max(abs(values[0]), 1e-6)
    grid = numpy.concatenate([[values[0] - step], (values[1:] + values[:-1]) / 2, [values[-1] + step]])
    return numpy.unique(numpy.clip(grid, low, high))


def successive_distances(table):
    """Character distances between the transcripts of successive exits."""
    return [
        transcript_distance(hyps[e], hyps[e - 1])
        for hyps in table.hypotheses
        for e in range(1, table.num_exits - 1)
    ]


def oracle_penalties(table, max_points=200):
    """Penalties at which some utterance's penalised oracle exit changes,
    as a grid between them (:func:`oracle_exits`)."""
    breaks = set()
    layers = table.exit_layers
    for errors in table.word_errors:
        for i in range(len(layers)):
            for j in range(i + 1, len(layers)):
                if errors[i] > errors[j]:
                    breaks.add((errors[i] - errors[j]) / (layers[j] - layers[i]))
    return threshold_grid(sorted(breaks), max_points=max_points)


def selector_grids(table, topk=None, max_points=100):
    """``{name: [selector, ...]}`` to sweep on ``table`` (a confidence sweep
    needs the table's ``"confidence"`` measure and its ``topk``)."""
    last = table.num_exits - 1

    def cached(key):
        return [v for row in table.measures.get(key, []) for v in row[:last]]

    grids = {
        "fixed": [FixedExitSelector(e) for e in range(table.num_exits)],
        "entropy": [EntropySelector(t) for t in threshold_grid(cached("entropy"), max_points)],
        "patience": [PatienceSelector(p) for p in range(1, table.num_exits + 1)],
        "agreement": [AgreementSelector(t) for t in
                      subsample(successive_distances(table) + [0.0], max_points)],
    }
    if "confidence" in table.measures:
        grids["confidence"] = [
            ConfidenceSelector(t, topk=topk or 1)
            for t in threshold_grid(cached("confidence"), max_points, high=1.0)
        ]
    if "entropy" not in table.measures:
        del grids["entropy"]
    return grids


def sweep(table, topk=None, max_points=100):
    """Operating points of every selector of :func:`selector_grids` plus the
    oracle curve: a list of dicts with ``selector``, ``parameter``,
    ``mean_exit_layer``, ``mean_exit_index``, ``wer``, ``errors``."""
    rows = []
    for name, selectors in selector_grids(table, topk, max_points).items():
        for selector in selectors:
            point = operating_point(table, simulate(selector, table))
            rows.append({"selector": name, "parameter": getattr(selector, selector.parameter), **point})
    for penalty in oracle_penalties(table):
        exits = oracle_exits(table.word_errors, table.exit_layers, penalty)
        rows.append({"selector": "oracle", "parameter": float(penalty), **operating_point(table, exits)})
    return rows


def lowest_wer_within(rows, max_mean_exit):
    """The operating point of ``rows`` with the lowest WER among those whose
    mean exit layer is at most ``max_mean_exit`` (ties: the shallower one);
    None when none is that shallow.

    Example
    -------
    >>> rows = [{"mean_exit_layer": 3.0, "wer": 20.0}, {"mean_exit_layer": 5.0, "wer": 12.0},
    ...         {"mean_exit_layer": 4.0, "wer": 15.0}]
    >>> lowest_wer_within(rows, 4)
    {'mean_exit_layer': 4.0, 'wer': 15.0}
    >>> lowest_wer_within(rows, 2) is None
    True
    """
    within = [r for r in rows if r["mean_exit_layer"] <= max_mean_exit + 1e-9]
    return min(within, key=lambda r: (r["wer"], r["mean_exit_layer"])) if within else None


def fixed_exit_wer_at(table, mean_exit_layer):
    """WER (%) the fixed exits reach at a mean depth of ``mean_exit_layer``
    layers: the per-exit WERs linearly interpolated between exit layers (a
    share of the utterances at each of the two neighbouring exits gives
    that depth and that WER), the baseline a selector has to beat.

    Example
    -------
    >>> t = ExitTable(["a", "b"], ["X Y", "Z"], [2, 4], [["X", "X Y"], ["", "Z"]],
    ...               [[1, 0], [1, 0]], [2, 1])
    >>> round(fixed_exit_wer_at(t, 3.0), 2)  # 66.67 % at exit 2, 0 % at exit 4
    33.33
    """
    per_exit = [operating_point(table, numpy.full(len(table.ids), e))["wer"] for e in range(table.num_exits)]
    return float(numpy.interp(mean_exit_layer, table.exit_layers, per_exit))


def summarize(table, rows, tolerance=0.5):
    """Per selector, the lowest mean exit whose WER stays within
    ``tolerance`` (absolute %) of the top exit (``mean_exit_at_top_plus_0p5``
    for the default tolerance), with the parameter that gives it; and, for
    every exit layer as a depth budget, the lowest WER it reaches at a mean
    exit within that budget (``lowest_wer_within_mean_exit``: budget ->
    ``{wer, mean_exit_layer, parameter}``, None where no point is that shallow)."""
    exits = numpy.arange(table.num_exits)
    per_exit = [operating_point(table, numpy.full(len(table.ids), e)) for e in exits]
    top_wer = per_exit[-1]["wer"]
    key = "mean_exit_at_top_plus_" + f"{tolerance:g}".replace(".", "p")
    selectors = {}
    for name in dict.fromkeys(r["selector"] for r in rows):
        points = [r for r in rows if r["selector"] == name]
        within = [r for r in points if r["wer"] <= top_wer + tolerance + 1e-9]
        best = min(within, key=lambda r: (r["mean_exit_layer"], r["wer"])) if within else None
        budgets = {}
        for layer in table.exit_layers:
            point = lowest_wer_within(points, layer)
            budgets[str(layer)] = point and {k: point[k] for k in ("wer", "mean_exit_layer", "parameter")}
        selectors[name] = {
            key: best and best["mean_exit_layer"],
            key.replace("mean_exit", "mean_exit_index"): best and best["mean_exit_index"],
            "parameter": best and best["parameter"],
            "wer": best and best["wer"],
            "lowest_wer_within_mean_exit": budgets,
        }
    return {
        "utterances": len(table.ids),
        "exit_layers": table.exit_layers,
        "wer_per_exit": [p["wer"] for p in per_exit],
        "top_exit_wer": top_wer,
        "tolerance_wer_abs": tolerance,
        "mean_exit_unit": "encoder layers computed (mean_exit_index_*: 0-based exit index)",
        "oracle": operating_point(table, oracle_exits(table.word_errors)),
        "selectors": selectors,
    }
