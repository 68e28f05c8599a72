"""Atomic file writes: the one way hgpipe writes a file that a user or a rerun relies on.

A file is written under a temporary name in its own directory and renamed over the
final name only when complete, so an interrupted job never leaves a half-written file
that looks whole, and never destroys the previous good one.
"""
import contextlib
import json
import os
import tempfile


def ensure_dir(path):
    """Create ``path`` and its parents unless they exist; safe when others race to do it.

    A check-then-create (``isdir`` then ``makedirs``) fails with ``File exists`` when
    another thread or process creates the folder in between: prepare's workers writing
    their first shard records into one new folder did exactly that on fresh machines.
    ``exist_ok`` makes creation idempotent; a non-folder at ``path`` still raises.
    """
    os.makedirs(path, exist_ok=True)
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it becomes ``path``.

    The file gets ordinary permissions (0666 less the umask), not mkstemp's private 0600.
    """
    directory = ensure_dir(os.path.dirname(os.path.abspath(path)))
    handle, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp",
                                   dir=directory)
    os.close(handle)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_bytes(path, data):
    """Write ``data`` to ``path`` atomically. A failed write (a full disk: ``write``
    raises an OSError that names no file) is re-raised naming ``path``, the file the
    user asked for, not the temporary one, which is removed."""
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as out:
                out.write(data)
    except EnvironmentError as exc:
        temporary = exc.filename and os.path.basename(str(exc.filename)).startswith(
            ".%s." % os.path.basename(path))
        if exc.errno is None or (exc.filename and not temporary):
            raise
        raise type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), path)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def write_json(path, payload, sort_keys=True):
    """Indented JSON with a final newline; sorted keys unless the order is meaningful."""
    write_text(path, json.dumps(payload, indent=2, sort_keys=sort_keys) + "\n")
