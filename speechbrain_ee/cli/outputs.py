"""Output files of the ``sbee`` commands, checked before the work: streams
written as results come, folders made up front, summaries written in one go."""

import os
import sys
import tempfile
from contextlib import nullcontext


def open_output(path, flag="--output"):
    """Opens ``path`` for writing now, before any work (folders made), line
    buffered so that results written as they come survive a later failure;
    ``None`` or ``-``: stdout. A path that cannot be written is a one-line
    error naming it."""
    if path in (None, "-"):
        return sys.stdout
    try:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        return open(path, "w", buffering=1)
    except OSError as err:
        raise OSError(f"cannot write {flag} {path}: {err.strerror or err}") from err


def output_dir(path, flag="--output-dir"):
    """Makes the folder ``path`` now, before any work, and checks that it
    can be written (a one-line error naming it otherwise); returns ``path``."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot write {flag} {path}: {err.strerror or err}") from err
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {flag} {path}: permission denied")
    return path


class PendingFile:
    """An output file checked before the work and written at its end in one
    go (a temporary file beside it, renamed into place: never half a file).

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "out", "summary.json")
    >>> pending = PendingFile(path)        # the folder exists and is writable now
    >>> pending.write_text("{}")
    >>> open(path).read()
    '{}'
    """

    def __init__(self, path, flag="--json-out"):
        self.path = path
        if os.path.isdir(path):
            raise IsADirectoryError(f"cannot write {flag} {path}: it is a folder")
        try:
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
            handle, self.tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".part")
            os.close(handle)
        except OSError as err:
            raise OSError(f"cannot write {flag} {path}: {err.strerror or err}") from err

    def write_text(self, text):
        """Writes ``text`` and renames the file into place."""
        try:
            with open(self.tmp, "w") as handle:
                handle.write(text)
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self):
        """Removes the temporary file (nothing is written)."""
        if os.path.exists(self.tmp):
            os.remove(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()  # after write_text, nothing is left to remove


def pending_json(path, flag="--json-out"):
    """:class:`PendingFile` for ``path``; when no path is given, a context
    giving None (``with pending_json(args.json_out) as out:``)."""
    return nullcontext() if path is None else PendingFile(path, flag)
