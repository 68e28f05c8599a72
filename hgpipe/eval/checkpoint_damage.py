"""Is a checkpoint whole? One line naming the damaged file, and the newest whole one.

A checkpoint (TensorFlow's V2 format) is ``PREFIX.index``, a table of every tensor's
dtype, shape, place and CRC32C, and ``PREFIX.data-00000-of-00001``, the tensors' bytes.
A disk that filled up, a copy that stopped half-way, a flipped bit: TensorFlow reports
each as a multi-line ``DataLossError``, ``OutOfRangeError`` or ``NotFoundError`` from
inside ``Saver.restore`` (``Read less bytes than requested``, ``Checksum does not
match``), which names no file a user can act on, or as a failure the caller takes for
a different network. :func:`find_damage` reads the checkpoint the way a restore does,
tensor by tensor (each read checks the tensor's CRC32C; the index's blocks carry their
own checksums), and says which file is damaged and how. :func:`newest_whole` finds the
checkpoint beside it that a resume or an export can use instead.

Both are only called after something failed, so a whole checkpoint is never read
twice. Memory stays bounded by the data files' size: a tensor is only read when its
declared size fits in them, so a damaged index that declares a huge shape is reported
instead of allocated.
"""
import glob
import os
import re

from hgpipe.tf_compat import import_tf

_DATA_FILE = re.compile(r"(\S+\.data-\d{5}-of-\d{5})")
_STEP = re.compile(r"-(\d+)$")


def data_files(prefix):
    """The ``.data-*`` files of ``prefix`` present on disk, sorted."""
    return sorted(glob.glob(glob.escape(prefix) + ".data-?????-of-?????"))


def first_line(exc):
    """The line of a TensorFlow error that says what went wrong.

    TF 2.x puts ``Graph execution error:``, ``Detected at node ... defined at`` and a
    stack before the cause (``Read less bytes than requested``); TF 1.15 starts with it.
    """
    text = str(getattr(exc, "message", "") or exc).strip()
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or line[:1].isspace() or stripped.startswith(
                ("Graph execution error", "Detected at node", "Node: ", "[[")):
            continue
        return stripped
    return text.splitlines()[0] if text else type(exc).__name__


def failed_write(exc):
    """(file, reason) of a failed checkpoint write (``Saver.save``, a SavedModel's
    variables), file None when the error names none.

    TensorFlow names the temporary file it was writing
    (``X_temp/part-00000-of-00001.data-00000-of-00001.tempstate123; File too large``):
    the file is given as the checkpoint file it was to become.
    """
    if isinstance(exc, EnvironmentError) and getattr(exc, "filename", None):
        path, reason = str(exc.filename), exc.strerror or str(exc)
    else:
        text = first_line(exc)
        named = re.match(r"^(\S+?)[;:] (.+)$", text)
        if not named:
            return None, text
        path, reason = named.group(1), named.group(2)
    path = re.sub(r"\.tempstate\d+$", "", path)
    path = re.sub(r"_temp(_[0-9a-f]+)?/part-\d+-of-\d+(?=\.)", "", path)
    return path, reason


def _tensor_bytes(tf, shape, dtype):
    """Bytes a tensor of ``shape`` and ``dtype`` takes, or None (strings: variable)."""
    dtype = tf.as_dtype(dtype)
    if dtype == tf.string:
        return None
    count = 1
    for dim in shape:
        count *= max(int(dim), 0)
    return count * dtype.size


def _sizes(files):
    return "+".join("{:,}".format(os.path.getsize(f)) for f in files)


def _read_problem(exc, prefix, files, declared):
    """(file, problem) for an exception raised while reading a tensor of ``prefix``."""
    text = first_line(exc)
    named = _DATA_FILE.search(text)
    if named and ("No such file" in text or "not found" in text.lower()):
        return named.group(1).rstrip(";:,"), "missing"
    target = files[0] if len(files) == 1 else prefix + ".data-*"
    if "less bytes" in text:
        return target, "truncated (%s bytes, the index declares {:,})".format(declared) \
            % _sizes(files)
    if "checksum" in text.lower():
        return target, "damaged (checksum mismatch)"
    return target, "unreadable (%s)" % text


def find_damage(prefix):
    """None if every tensor of checkpoint ``prefix`` reads back whole, else one line
    ``FILE: problem`` naming the damaged file (the index or a data file)."""
    tf = import_tf()
    index = prefix + ".index"
    if not os.path.isfile(index):
        return "%s: missing" % index
    try:
        reader = tf.train.NewCheckpointReader(prefix)
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
    except Exception as exc:  # DataLossError, NotFoundError, ValueError, ...
        return "%s: damaged or not a checkpoint index (%s)" % (index, first_line(exc))
    files = data_files(prefix)
    if not files:
        return "%s.data-00000-of-00001: missing" % prefix
    available = sum(os.path.getsize(f) for f in files)
    sizes = {}
    for name in shapes:
        try:
            sizes[name] = _tensor_bytes(tf, shapes[name], dtypes[name])
        except Exception as exc:  # a dtype this TensorFlow does not know
            return "%s: damaged (tensor %s: %s)" % (index, name, first_line(exc))
    # sizes only: nothing is allocated before the data files are known to hold them
    declared = sum(size for size in sizes.values() if size is not None)
    if declared > available:  # the tensors' bytes alone need more than there is
        target = files[0] if len(files) == 1 else prefix + ".data-*"
        return "%s: truncated (%s bytes, the index declares {:,})".format(declared) % (
            target, _sizes(files))
    for name in sorted(shapes):
        try:
            reader.get_tensor(name)
        except Exception as exc:  # IndexError (TF 2.x), OutOfRangeError, DataLossError
            return "%s: %s" % _read_problem(exc, prefix, files, declared)
    return None


def _step(prefix):
    match = _STEP.search(prefix)
    return int(match.group(1)) if match else -1


def newest_whole(folder, besides=()):
    """The newest checkpoint prefix in ``folder`` that :func:`find_damage` finds whole,
    leaving out ``besides`` (the damaged ones already known); None if there is none."""
    skip = set(os.path.abspath(p) for p in besides)
    prefixes = [p[:-len(".index")] for p in glob.glob(os.path.join(glob.escape(folder),
                                                                   "*.index"))]
    for prefix in sorted(prefixes, key=_step, reverse=True):
        if os.path.abspath(prefix) not in skip and find_damage(prefix) is None:
            return prefix
    return None
