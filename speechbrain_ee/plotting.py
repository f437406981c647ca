"""Reporting of per-exit results: the paper's Table 2 layout as text, and a bar
chart of the WER of each exit."""

import os


def format_exit_table(exit_layers, wer, cer):
    """Text table, one row per exit (the paper's Table 2 layout).

    Arguments
    ---------
    exit_layers : list of int
        Encoder layer of each exit.
    wer, cer : list of float
        Word and character error rates in percent, in exit order.

    Example
    -------
    >>> print(format_exit_table([6, 12], [10.0, 8.5], [5.0, 4.25]))
    exit layer   WER %   CER %
             6   10.00    5.00
            12    8.50    4.25
    """
    if not len(exit_layers) == len(wer) == len(cer):
        raise ValueError(
            f"one WER and one CER per exit expected: {len(exit_layers)} exits, "
            f"{len(wer)} WER, {len(cer)} CER"
        )
    lines = ["exit layer   WER %   CER %"]
    lines += [f"{layer:10d} {w:7.2f} {c:7.2f}" for layer, w, c in zip(exit_layers, wer, cer)]
    return "\n".join(lines)


def plot_exit_wer(exit_layers, wer, path, title="WER per exit"):
    """Bar chart of the WER of each exit, saved as an image (PNG by extension).

    Arguments
    ---------
    exit_layers : list of int
        Encoder layer of each exit (x axis).
    wer : list of float
        WER in percent, in exit order.
    path : str
        Destination file; its folder is created.
    title : str
        Figure title.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "wer.png")
    >>> plot_exit_wer([2, 4], [30.0, 12.5], path)
    >>> os.path.getsize(path) > 0
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(exit_layers) != len(wer):
        raise ValueError(f"one WER per exit expected: {len(exit_layers)} exits, {len(wer)} WER")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig, ax = plt.subplots(figsize=(1.2 * len(exit_layers) + 2.5, 3.5))
    positions = list(range(len(exit_layers)))
    bars = ax.bar(positions, wer, color="tab:blue")
    ax.set_xticks(positions, [str(layer) for layer in exit_layers])
    ax.bar_label(bars, labels=[f"{w:.1f}" for w in wer], padding=2)
    ax.set_xlabel("exit layer")
    ax.set_ylabel("WER %")
    ax.set_ylim(0, max(max(wer) * 1.15, 1.0))
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
