"""Calibration: pick a selector's threshold from sweep operating points and
store it with the model (``<model>/selector.yaml``, hyperpyyaml), where
:class:`speechbrain_ee.inference.EarlyExitASR` finds it as its default
selector. The command is ``sbee calibrate`` (:mod:`speechbrain_ee.cli.calibrate`).
"""

import math
import os

import yaml
from hyperpyyaml import load_hyperpyyaml

from speechbrain_ee.checks import check_number
from speechbrain_ee.selection.selectors import GuardedAgreementSelector

CALIBRATION_FILE = "selector.yaml"


def calibrate(rows, selector, target_wer=None, target_mean_exit=None):
    """Picks an operating point of ``selector`` from sweep ``rows``
    (:func:`speechbrain_ee.selection.sweep.sweep`).

    Arguments
    ---------
    rows : list of dict
        Sweep operating points.
    selector : str
        Selector name.
    target_wer : float, optional
        Lowest mean exit whose WER (%) is at most this.
    target_mean_exit : float, optional
        Lowest WER whose mean exit layer is at most this.

    Returns
    -------
    dict
        The chosen row.

    Example
    -------
    >>> rows = [{"selector": "entropy", "parameter": t, "wer": w, "mean_exit_layer": m}
    ...         for t, w, m in [(0.0, 10.0, 12.0), (0.1, 11.0, 8.0), (0.2, 15.0, 4.0)]]
    >>> calibrate(rows, "entropy", target_wer=12)["parameter"]
    0.1
    >>> calibrate(rows, "entropy", target_mean_exit=10)["parameter"]
    0.1
    """
    if (target_wer is None) == (target_mean_exit is None):
        raise ValueError("give exactly one of target_wer and target_mean_exit")
    points = [r for r in rows if r["selector"] == selector]
    if not points:
        raise ValueError(f"no sweep point for selector {selector!r}")
    if target_wer is not None:
        target = float(check_number("target WER", target_wer, minimum=0.0, allow_infinite=True))
        ok = [r for r in points if r["wer"] <= target]
        if not ok:
            best = min(r["wer"] for r in points)
            raise ValueError(f"no {selector} threshold reaches WER {target}% (best: {best:.2f}%)")
        return min(ok, key=lambda r: (r["mean_exit_layer"], r["wer"]))
    target = float(check_number("target mean exit", target_mean_exit, minimum=0.0, allow_infinite=True))
    ok = [r for r in points if r["mean_exit_layer"] <= target]
    if not ok:
        lowest = min(r["mean_exit_layer"] for r in points)
        raise ValueError(f"no {selector} threshold has a mean exit <= {target} layers (lowest: {lowest:.2f})")
    return min(ok, key=lambda r: (r["wer"], r["mean_exit_layer"]))


def mix_operating_points(selector, tables):
    """Operating point of ``selector`` on each exit table of ``tables``
    (``{set name: ExitTable}``), with ``fixed_wer`` (the fixed exits' WER at
    the same mean depth, :func:`~speechbrain_ee.selection.sweep.fixed_exit_wer_at`)
    and ``gap`` (WER minus it: > 0 is worse than the fixed exits)."""
    from speechbrain_ee.selection.sweep import fixed_exit_wer_at, operating_point, simulate

    points = {}
    for name, table in tables.items():
        point = operating_point(table, simulate(selector, table))
        point["fixed_wer"] = fixed_exit_wer_at(table, point["mean_exit_layer"])
        point["gap"] = point["wer"] - point["fixed_wer"]
        points[name] = point
    return points


def calibrate_on_mix(tables, candidates, clean="clean", target_wer=None, max_gap=0.0):
    """Picks, among ``candidates`` (selectors), the one with the lowest mean
    exit on ``tables[clean]`` whose WER there is at most ``target_wer`` and
    whose WER on every other table (degraded audio) is at most the fixed
    exits' WER at the same mean depth plus ``max_gap`` (absolute %).

    Returns
    -------
    (selector, points)
        The choice and its :func:`mix_operating_points`.

    Example
    -------
    >>> from speechbrain_ee.selection.sweep import ExitTable
    >>> from speechbrain_ee.selection import EntropySelector
    >>> table = lambda h: ExitTable(["a", "b"], ["X", "Y"], [2, 4], [["X", "X"], ["Y", "Y"]],
    ...                             [[0, 0], [0, 0]], [1, 1], {"entropy": h})
    >>> tables = {"clean": table([[0.1, None], [0.1, None]]), "noisy": table([[0.1, None], [0.9, None]])}
    >>> choice, points = calibrate_on_mix(tables, [EntropySelector(0.05), EntropySelector(0.5)], target_wer=5)
    >>> choice, points["clean"]["mean_exit_layer"], points["noisy"]["mean_exit_layer"]
    (EntropySelector(threshold=0.5), 2.0, 3.0)
    """
    if clean not in tables:
        raise ValueError(f"the dev mix has no {clean!r} table (sets: {sorted(tables)})")
    gap = float(check_number("max_gap", max_gap, minimum=-100.0, maximum=100.0))
    best = None
    for selector in candidates:
        points = mix_operating_points(selector, tables)
        if target_wer is not None and points[clean]["wer"] > target_wer + 1e-9:
            continue
        if any(p["gap"] > gap + 1e-9 for name, p in points.items() if name != clean):
            continue
        key = (points[clean]["mean_exit_layer"], points[clean]["wer"])
        if best is None or key < best[0]:
            best = (key, selector, points)
    if best is None:
        raise ValueError(
            f"no candidate selector reaches WER <= {target_wer} on {clean!r} while staying within "
            f"{gap:+g} of the fixed exits on every other set"
        )
    return best[1], best[2]


def guarded_candidates(tables, clean="clean", agreements=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5), points=8):
    """A grid of :class:`GuardedAgreementSelector` for :func:`calibrate_on_mix`:
    entropy thresholds at quantiles of the entropies seen after the first
    exit (and none), first-exit thresholds at low quantiles of the clean
    first-exit entropies (and never), times ``agreements``."""
    import numpy

    later = [v for t in tables.values() for row in t.measures["entropy"] for v in row[1:-1] if v is not None]
    first = [row[0] for row in tables[clean].measures["entropy"]]
    thresholds = sorted(set(numpy.quantile(later, numpy.linspace(0.3, 1.0, points)).tolist()) | {math.inf})
    first_thresholds = sorted(set(numpy.quantile(first, numpy.linspace(0.0, 0.5, points)).tolist()) | {0.0})
    return [
        GuardedAgreementSelector(t, agreement=a, first_exit_threshold=f)
        for t in thresholds for a in agreements for f in first_thresholds
    ]


def save_selector(folder, selector, info=None, filename=CALIBRATION_FILE):
    """Writes ``selector`` (and an ``info`` mapping) to ``folder/selector.yaml``
    (or ``folder/<filename>``).

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ee.selection import EntropySelector
    >>> path = save_selector(tempfile.mkdtemp(), EntropySelector(0.02), {"wer": 9.5})
    >>> load_selector(path)
    EntropySelector(threshold=0.02)
    """
    cls = type(selector)
    args = yaml.safe_dump(selector.config(), default_flow_style=False, sort_keys=False)
    lines = [
        "# Exit selector calibrated by sbee calibrate (speechbrain_ee.selection.calibrate)",
        f"selector: !new:{cls.__module__}.{cls.__name__}",
        *("    " + line for line in args.strip().splitlines()),
    ]
    if info:
        lines.append(yaml.safe_dump({"calibration": info}, sort_keys=False).strip())
    path = os.path.join(folder, filename)
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def load_selector(path, with_calibration=False):
    """The selector stored by :func:`save_selector` (and, with
    ``with_calibration``, its ``calibration`` mapping: ``(selector, info)``)."""
    with open(path) as handle:
        loaded = load_hyperpyyaml(handle)
    if "selector" not in loaded:
        raise ValueError(f"{path} has no 'selector' entry")
    if with_calibration:
        return loaded["selector"], loaded.get("calibration") or {}
    return loaded["selector"]

