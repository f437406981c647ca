"""Calibration: pick a selector's threshold from sweep operating points and
store it with the model (``<model>/selector.yaml``, hyperpyyaml), where
:class:`speechbrain_ee.inference.EarlyExitASR` finds it as its default
selector. The command is ``sbee calibrate`` (:mod:`speechbrain_ee.cli.calibrate`).
"""

import os

import yaml
from hyperpyyaml import load_hyperpyyaml

from speechbrain_ee.selection.selectors import check_number

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
        target = check_number(target_wer, "target WER", low=0.0)
        ok = [r for r in points if r["wer"] <= target]
        if not ok:
            best = min(r["wer"] for r in points)
            raise ValueError(f"no {selector} threshold reaches WER {target}% (best: {best:.2f}%)")
        return min(ok, key=lambda r: (r["mean_exit_layer"], r["wer"]))
    target = check_number(target_mean_exit, "target mean exit", low=0.0)
    ok = [r for r in points if r["mean_exit_layer"] <= target]
    if not ok:
        lowest = min(r["mean_exit_layer"] for r in points)
        raise ValueError(f"no {selector} threshold has a mean exit <= {target} layers (lowest: {lowest:.2f})")
    return min(ok, key=lambda r: (r["wer"], r["mean_exit_layer"]))


def save_selector(folder, selector, info=None):
    """Writes ``selector`` (and an ``info`` mapping) to ``folder/selector.yaml``.

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
    path = os.path.join(folder, CALIBRATION_FILE)
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def load_selector(path):
    """The selector stored by :func:`save_selector`."""
    with open(path) as handle:
        loaded = load_hyperpyyaml(handle)
    if "selector" not in loaded:
        raise ValueError(f"{path} has no 'selector' entry")
    return loaded["selector"]
