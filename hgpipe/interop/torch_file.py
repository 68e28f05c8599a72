"""Read PyTorch checkpoint files (``torch.save``) into numpy arrays, without torch.

Ascend images and most TensorFlow installs have no torch, and the weights people hold come
as ``.pth`` / ``.pth.tar`` files. Two layouts exist (see ``torch/serialization.py``):

* zip (torch >= 1.6): a zip archive ``<name>/data.pkl`` (the pickled object), one record
  ``<name>/data/<key>`` of raw bytes per storage, and ``<name>/byteorder`` (absent in
  older zips: little-endian);
* legacy (torch 0.2 - 1.5, e.g. bearpaw's 2017 releases): one stream of pickles -- magic
  number, protocol version 1001, a sys-info dict, the object, the list of storage keys --
  followed, for each key in that order, by an int64 element count and the raw elements.

In both, tensors are pickled as calls to ``torch._utils._rebuild_tensor[_v2]`` on a
storage named by a *persistent id* ``('storage', StorageType, key, location, numel[,
view])``. Checkpoints come from strangers, and unpickling runs whatever callables a pickle
names, so every pickle of both formats is read in two steps:

1. :func:`_scan` walks its opcodes (``pickletools.genops``, which builds nothing) and
   refuses opcodes a checkpoint never holds -- ``INST``, ``OBJ``, ``NEWOBJ[_EX]``,
   ``EXT1/2/4``, text ``PERSID``, out-of-band buffers; in the header pickles (magic,
   protocol, sys info, storage keys: only ints, strings, dicts and lists) also
   ``GLOBAL``, ``STACK_GLOBAL``, ``REDUCE``, ``BUILD`` and persistent ids -- as well as
   lengths that reach past the file and memo indices larger than the pickle (the C
   unpickler allocates both before it can notice), so no step allocates more than the
   pickle's own size;
2. the pickle's bytes are unpickled by :class:`_HeaderUnpickler` (resolves no global at
   all) or :class:`_ObjectUnpickler`, which resolves exactly the names torch writes for a
   tensor checkpoint (:data:`_SAFE_GLOBALS`, the storage types and dtypes) to harmless
   functions of this module and refuses every other one. The objects those return refuse
   ``BUILD`` (their ``__setstate__`` raises), so no pickled state can plant a callable.

A file is therefore read, never executed. Sizes are checked before memory is taken: a
storage must be as large as its record (zip) or the bytes left in the file (legacy); a
tensor may not hold more elements than its storage; zip members must be stored or
deflated, unencrypted, and declare at most :func:`byte_budget` uncompressed bytes, which
also bounds the tensors built (a crafted 550-byte file once asked for 13.4 GiB).
"""
import collections
import io
import os
import pickle
import pickletools
import stat
import struct
import zipfile
import zlib

import numpy as np

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch/serialization.py MAGIC_NUMBER
LEGACY_PROTOCOL_VERSION = 1001

# Memory bound: the bytes a file may decompress to, and its tensors may fill, are at most
# BUDGET_FACTOR times the file's size, and never less than BUDGET_FLOOR. A checkpoint's
# tensors *are* its bytes (torch writes storages uncompressed, and a state_dict's tensors
# do not repeat elements), so a genuine file needs about 1x: the largest released ones
# (8-stack hourglass, 25.6 M float32 = 102 MB of weights, plus optimizer state) fit with
# room to spare; only crafted files (zip bombs, stride-0 or overlapping views) exceed it.
BUDGET_FACTOR = 4
BUDGET_FLOOR = 256 * 2 ** 20
MAX_DEPTH = 100  # nesting of containers in the object; state dicts nest 2-4 deep
MAX_LINE = 4096  # a text opcode's argument (GLOBAL names, protocol 0 ints)
MAX_DIMS = 32  # numpy's limit

# torch storage class name -> numpy dtype of its elements (bfloat16 is read as its raw
# 16 bits and widened to float32 below: numpy has no bfloat16)
STORAGE_DTYPES = {
    "DoubleStorage": "f8", "FloatStorage": "f4", "HalfStorage": "f2",
    "BFloat16Storage": "u2", "LongStorage": "i8", "IntStorage": "i4",
    "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}
# torch dtype attribute name -> storage class (for _rebuild_tensor_v3 and UntypedStorage)
_TORCH_DTYPES = {
    "float64": "DoubleStorage", "double": "DoubleStorage", "float32": "FloatStorage",
    "float": "FloatStorage", "float16": "HalfStorage", "half": "HalfStorage",
    "bfloat16": "BFloat16Storage", "int64": "LongStorage", "long": "LongStorage",
    "int32": "IntStorage", "int": "IntStorage", "int16": "ShortStorage",
    "short": "ShortStorage", "int8": "CharStorage", "uint8": "ByteStorage",
    "bool": "BoolStorage",
}
_STORAGE_MODULES = ("torch", "torch.cuda")

# opcodes no torch.save writes; each one is a way to call or build something
_NEVER = frozenset(["INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4", "PERSID",
                    "NEXT_BUFFER", "READONLY_BUFFER"])
# ... and in the header pickles, which hold only ints, strings, dicts and lists
_NEVER_IN_HEADER = _NEVER | frozenset(["GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD",
                                       "BINPERSID"])
_MEMO_PUTS = frozenset(["PUT", "BINPUT", "LONG_BINPUT"])


class TorchFileError(ValueError):
    """Not a PyTorch checkpoint this reader understands; the message names the file."""


def byte_budget(file_size):
    """Bytes a file of ``file_size`` bytes may decompress to or fill with tensors."""
    return max(BUDGET_FACTOR * int(file_size), BUDGET_FLOOR)


class _Inert(object):
    """Base of everything the unpicklers hand to a pickle: pickled state is refused."""

    __slots__ = ()

    def __setstate__(self, state):
        raise ValueError("the pickle sets state on a %s (BUILD), which torch never does"
                         % type(self).__name__)


class StorageType(_Inert):
    """A torch storage class named by the pickle (``torch.FloatStorage``...)."""

    __slots__ = ("name", "dtype")

    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _Marker(_Inert):
    """A torch class named only as a tag (``torch._tensor.Tensor`` given to
    ``_rebuild_from_type_v2``); it cannot be called."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


class Storage(_Inert):
    """One storage of the file: its elements arrive after unpickling (legacy) or are
    read from the archive on first use (zip)."""

    __slots__ = ("key", "type", "numel", "elements")

    def __init__(self, key, storage_type, numel):
        self.key = key
        self.type = storage_type
        self.numel = int(numel)
        self.elements = None  # 1-D numpy array, native byte order


def _int(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("a tensor's %s is %r, not a count" % (what, value))
    return value


class TensorRef(_Inert):
    """A tensor as the pickle describes it; :meth:`to_numpy` once its storage is read."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, Storage):
            raise ValueError("a tensor is rebuilt from %s, not a storage"
                             % type(storage).__name__)
        if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)) \
                or len(size) != len(stride) or len(size) > MAX_DIMS:
            raise ValueError("a tensor of storage %s has a malformed size or stride"
                             % (storage.key,))
        self.storage = storage
        self.offset = _int(offset, "offset")
        self.size = tuple(_int(s, "size") for s in size)
        self.stride = tuple(_int(s, "stride") for s in stride)

    def to_numpy(self, budget):
        elements = self.storage.elements
        if elements is None:
            raise ValueError("storage %s was never read" % (self.storage.key,))
        numel = 1
        for n in self.size:
            numel *= n
        if numel == 0:
            array = np.zeros(self.size, elements.dtype)
        else:
            last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
            if numel > elements.size or last >= elements.size:
                raise ValueError(
                    "a tensor of %s elements reaching element %d is built from storage "
                    "%s, which holds %d (its size, stride or offset asks for more than "
                    "the storage holds)" % (numel, last, self.storage.key, elements.size))
            budget.take(numel * elements.itemsize, "its tensors")
            view = np.lib.stride_tricks.as_strided(
                elements[self.offset:], shape=self.size,
                strides=tuple(s * elements.itemsize for s in self.stride))
            array = np.array(view)
        if self.storage.type.name == "BFloat16Storage":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array


class _Budget(object):
    """Bytes left for what a file makes this process allocate (see :func:`byte_budget`)."""

    def __init__(self, file_size):
        self.file_size = file_size
        self.limit = self.left = byte_budget(file_size)

    def take(self, nbytes, what):
        if nbytes > self.left:
            raise ValueError(
                "%s would take more than %d bytes, the limit for a file of %d bytes "
                "(%dx its size, at least %d MiB); a checkpoint's tensors are its bytes, "
                "so this file declares more than it holds"
                % (what, self.limit, self.file_size, BUDGET_FACTOR, BUDGET_FLOOR >> 20))
        self.left -= nbytes


# ----------------------------------------------------------------- what pickles may name

def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, hooks,
                       dtype, *unused):
    if isinstance(storage, Storage) and isinstance(dtype, StorageType) \
            and dtype.name != storage.type.name:
        storage.type = dtype  # an UntypedStorage: the tensor gives the element type
    return TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
    if not isinstance(data, TensorRef):
        raise ValueError("a parameter is rebuilt from %s, not a tensor"
                         % type(data).__name__)
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in (_rebuild_tensor, _rebuild_tensor_v3, _rebuild_parameter) \
            or not isinstance(args, tuple):
        raise ValueError("_rebuild_from_type_v2 is given something other than a tensor "
                         "rebuilder")
    return func(*args)


def _codecs_encode(text, encoding="utf-8"):
    # protocol 2 pickles bytes as _codecs.encode(text, 'latin1'); no other codec is
    # looked up (a codec name is an import)
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in (
            "latin1", "latin-1", "utf-8", "utf8", "ascii"):
        raise ValueError("_codecs.encode with codec %r" % (encoding,))
    return text.encode(encoding)


class _OrderedDict(collections.OrderedDict):
    """``collections.OrderedDict`` as torch pickles state dicts: its BUILD state
    (``_metadata``, torch's module versions) is dropped, never set as attributes."""

    def __setstate__(self, state):
        pass


_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): _OrderedDict,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice, ("builtins", "complex"): complex,
    ("__builtin__", "set"): set, ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): _codecs_encode,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Size"): tuple,
    ("torch._tensor", "Tensor"): _Marker("Tensor"),
    ("torch", "Tensor"): _Marker("Tensor"),
    ("torch.nn.parameter", "Parameter"): _Marker("Parameter"),
}


def _refuse_global(module, name):
    raise ValueError("its pickle names %s.%s, which is not a tensor, storage or plain "
                     "container; refused unrun (a whole-model save or a crafted file?)"
                     % (module, name))


class _HeaderUnpickler(pickle.Unpickler):
    """For the header pickles (ints, strings, dicts, lists): no global, no persistent id."""

    def find_class(self, module, name):
        _refuse_global(module, name)

    def persistent_load(self, pid):
        raise ValueError("a persistent id in a header pickle")


class _ObjectUnpickler(pickle.Unpickler):
    """Resolves only the names above; storages through ``load_storage``."""

    def __init__(self, handle, load_storage):
        pickle.Unpickler.__init__(self, handle, encoding="utf-8")
        self._load_storage = load_storage

    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module in _STORAGE_MODULES and name in STORAGE_DTYPES:
            return StorageType(name)
        if module == "torch" and name in _TORCH_DTYPES:
            return StorageType(_TORCH_DTYPES[name])
        if module in _STORAGE_MODULES and name == "UntypedStorage":
            return StorageType("ByteStorage")
        _refuse_global(module, name)

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise ValueError("unexpected persistent id of type %s" % type(pid).__name__)
        kind = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module":
            raise ValueError("a pickled nn.Module (a whole-model save): save its "
                             "state_dict() instead")
        if kind != "storage" or len(pid) not in (5, 6) or not isinstance(pid[1],
                                                                        StorageType):
            raise ValueError("unexpected persistent id %r" % (pid[:2],))
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise ValueError("a storage key of type %s" % type(key).__name__)
        if isinstance(numel, bool) or not isinstance(numel, int) or numel < 0:
            raise ValueError("storage %s declares %r elements" % (key, numel))
        view = pid[5] if len(pid) > 5 else None
        return self._load_storage(storage_type, str(key), numel, view)


# ----------------------------------------------------------------------------- pickles

class _Bounded(object):
    """A file seen up to ``end``: reads never ask for (or allocate) more than is there,
    and a line is at most MAX_LINE bytes."""

    def __init__(self, handle, end):
        self.handle = handle
        self.end = end

    def _left(self):
        return max(0, self.end - self.handle.tell())

    def read(self, n=-1):
        n = self._left() if n is None or n < 0 else min(n, self._left())
        return self.handle.read(n)

    def readline(self, limit=-1):
        return self.handle.readline(min(MAX_LINE, self._left()))

    def tell(self):
        return self.handle.tell()


def _scan(stream, what, header):
    """Walk one pickle's opcodes from ``stream`` to its STOP (see the module docstring);
    leaves ``stream`` just after it."""
    never = _NEVER_IN_HEADER if header else _NEVER
    count = 0
    try:
        for opcode, arg, _pos in pickletools.genops(stream):
            count += 1
            if opcode.name in never:
                raise ValueError("opcode %s, which a torch checkpoint's %s never holds; "
                                 "refused unrun" % (opcode.name, what))
            if opcode.name in _MEMO_PUTS and arg > count:
                raise ValueError("memo index %d in a pickle of %d opcodes" % (arg, count))
    except ValueError as exc:
        if "refused unrun" in str(exc):
            raise ValueError("the %s: %s" % (what, exc))
        raise ValueError("cannot read the %s (%s)" % (what, str(exc).splitlines()[0]
                                                     if str(exc) else "malformed"))


def _unpickle(data, what, unpickler):
    """Unpickle ``data`` (one scanned pickle) with ``unpickler(stream)``."""
    stream = io.BytesIO(data)
    try:
        obj = unpickler(stream).load()
    except ValueError as exc:
        raise ValueError("the %s: %s" % (what, exc))
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, LookupError,
            struct.error) as exc:
        raise ValueError("cannot read the %s (%s: %s)" % (what, type(exc).__name__, exc))
    if stream.tell() != len(data):
        raise ValueError("the %s ends before its last opcode" % what)
    return obj


def _materialise(value, budget, memo, depth=0):
    """The unpickled object with every TensorRef replaced by a numpy array.

    Objects the pickle shares (memo GETs) are converted once and stay shared, so a
    few kilobytes of references cannot fan out into copies; cycles and nesting deeper
    than MAX_DEPTH are refused (Python would raise RecursionError).
    """
    if not isinstance(value, (TensorRef, dict, list, tuple)):
        return value
    key = id(value)
    if key in memo:
        if memo[key] is memo:
            raise ValueError("the object holds a reference cycle")
        return memo[key]
    if depth > MAX_DEPTH:
        raise ValueError("the object is nested more than %d levels deep" % MAX_DEPTH)
    memo[key] = memo  # in progress
    if isinstance(value, TensorRef):
        result = value.to_numpy(budget)
    elif isinstance(value, dict):
        result = (collections.OrderedDict if isinstance(value, collections.OrderedDict)
                  else dict)((k, _materialise(v, budget, memo, depth + 1))
                             for k, v in dict.items(value))
    elif type(value) in (list, tuple):
        result = type(value)(_materialise(v, budget, memo, depth + 1) for v in value)
    else:
        result = value
    memo[key] = result
    return result


# ------------------------------------------------------------------------------- zip

def _check_members(archive, file_size, budget):
    """Refuse encrypted or oddly compressed members and archives that declare more
    uncompressed bytes than the budget, before anything is decompressed."""
    total = 0
    for info in archive.infolist():
        if info.flag_bits & 0x1:
            raise ValueError("zip member %s is encrypted" % info.filename)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ValueError("zip member %s is compressed with method %d (torch stores "
                             "its records uncompressed)" % (info.filename,
                                                            info.compress_type))
        if info.header_offset + info.compress_size > file_size or (
                info.compress_type == zipfile.ZIP_STORED
                and info.compress_size != info.file_size):
            raise ValueError("zip member %s declares more bytes than the file holds"
                             % info.filename)
        total += info.file_size
    budget.take(total, "its zip members (%d bytes uncompressed)" % total)


def _read_member(archive, info):
    with archive.open(info) as handle:
        data = handle.read(info.file_size)
    if len(data) != info.file_size:
        raise ValueError("zip member %s ends early" % info.filename)
    return data


def _read_zip(archive, file_size, budget):
    _check_members(archive, file_size, budget)
    infos = {info.filename: info for info in archive.infolist()}
    pickles = [name for name in infos if name.endswith("data.pkl") and name.count("/") <= 1]
    if len(pickles) != 1:
        raise ValueError("a zip without one data.pkl (not a torch.save file; a TorchScript "
                         "archive or another zip?)")
    prefix = pickles[0][:-len("data.pkl")]
    order = "little"
    if prefix + "byteorder" in infos:
        order = _read_member(archive, infos[prefix + "byteorder"]).decode(
            "ascii", "replace").strip()
        if order not in ("little", "big"):
            raise ValueError("unknown byte order %r" % order[:20])
    storages = {}

    def load_storage(storage_type, key, numel, view):
        if key not in storages:
            record = prefix + "data/" + key
            if record not in infos:
                raise ValueError("storage record %s is missing" % record)
            nbytes = numel * storage_type.dtype.itemsize
            if infos[record].file_size != nbytes:
                raise ValueError("storage record %s holds %d bytes, its tensors say %d "
                                 "elements of %d bytes" % (record, infos[record].file_size,
                                                           numel, storage_type.dtype.itemsize))
            storage = Storage(key, storage_type, numel)
            storage.elements = _elements(_read_member(archive, infos[record]),
                                         storage_type, order, key)
            storages[key] = storage
        return storages[key]

    data = _read_member(archive, infos[pickles[0]])
    _scan(io.BytesIO(data), "data.pkl", header=False)
    return _unpickle(data, "data.pkl", lambda stream: _ObjectUnpickler(stream, load_storage))


def _elements(data, storage_type, order, key):
    dtype = storage_type.dtype.newbyteorder("<" if order == "little" else ">")
    if len(data) % dtype.itemsize:
        raise ValueError("storage %s holds %d bytes, not a whole number of %d-byte elements"
                         % (key, len(data), dtype.itemsize))
    return np.frombuffer(data, dtype).astype(dtype.newbyteorder("="))


# ---------------------------------------------------------------------------- legacy

def _read_legacy(handle, file_size):
    bounded = _Bounded(handle, file_size)

    def next_pickle(what, header, unpickler=_HeaderUnpickler):
        start = handle.tell()
        _scan(bounded, what, header)
        end = handle.tell()
        handle.seek(start)
        return _unpickle(handle.read(end - start), what, unpickler)

    magic = next_pickle("header", True)
    if magic != LEGACY_MAGIC_NUMBER:
        raise ValueError("not a PyTorch checkpoint (no torch.save magic number)")
    version = next_pickle("protocol version", True)
    if version != LEGACY_PROTOCOL_VERSION:
        raise ValueError("unsupported torch.save protocol version %r" % (version,))
    sys_info = next_pickle("sys info", True)
    if not isinstance(sys_info, dict):
        raise ValueError("the sys info is a %s, not a dict" % type(sys_info).__name__)
    little = sys_info.get("little_endian", True)
    if not isinstance(little, bool):
        raise ValueError("the sys info's little_endian is %r" % (little,))
    storages = collections.OrderedDict()
    views = {}

    def load_storage(storage_type, key, numel, view):
        if key not in storages:
            storages[key] = Storage(key, storage_type, numel)
        root = storages[key]
        if view is None:
            return root
        if not isinstance(view, tuple) or len(view) != 3:
            raise ValueError("a malformed storage view of storage %s" % key)
        view_key, offset, view_size = view
        view_key = str(view_key)
        if view_key not in views:
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 0
                   for v in (offset, view_size)) or offset + view_size > root.numel:
                raise ValueError("storage view %s reaches past storage %s" % (view_key, key))
            views[view_key] = _StorageView(view_key, root, offset, view_size)
        return views[view_key]

    obj = next_pickle("object", False,
                      lambda stream: _ObjectUnpickler(stream, load_storage))
    keys = next_pickle("storage keys", True)
    if not isinstance(keys, list):
        raise ValueError("the storage keys are a %s, not a list" % type(keys).__name__)
    order = "<" if little else ">"
    for key in keys:
        key = str(key)
        if key not in storages:
            raise ValueError("storage %s is listed but never used" % key[:100])
        storage = storages[key]
        if storage.elements is not None:
            raise ValueError("storage %s is listed twice" % key)
        header = handle.read(8)
        if len(header) != 8:
            raise ValueError("file ends before storage %s" % key)
        (count,) = struct.unpack(order + "q", header)
        if count != storage.numel:
            raise ValueError("storage %s holds %d elements, its tensors say %d"
                             % (key, count, storage.numel))
        nbytes = count * storage.type.dtype.itemsize
        left = file_size - handle.tell()
        if nbytes > left:
            raise ValueError("file ends inside storage %s (%d of %d bytes)"
                             % (key, left, nbytes))
        data = handle.read(nbytes)
        if len(data) != nbytes:
            raise ValueError("file ends inside storage %s (%d of %d bytes)"
                             % (key, len(data), nbytes))
        storage.elements = _elements(data, storage.type, "little" if little else "big", key)
    missing = [key for key, s in storages.items() if s.elements is None]
    if missing:
        raise ValueError("storage %s is used but not in the file" % missing[0])
    trailing = file_size - handle.tell()
    if trailing:
        raise ValueError("%d unexpected bytes after the last storage (torch.save writes "
                         "nothing there)" % trailing)
    for view in views.values():
        view.resolve()
    return obj


class _StorageView(Storage):
    """A storage view (pre-0.4 files): a slice of a root storage."""

    __slots__ = ("root", "view_offset")

    def __init__(self, key, root, offset, numel):
        Storage.__init__(self, key, root.type, numel)
        self.root = root
        self.view_offset = offset

    def resolve(self):
        self.elements = self.root.elements[self.view_offset:self.view_offset + self.numel]


# ------------------------------------------------------------------------------- api

_UNREADABLE = (ValueError, LookupError, TypeError, AttributeError, EOFError,
               RuntimeError, NotImplementedError, OverflowError, MemoryError,
               pickle.UnpicklingError, struct.error, zipfile.BadZipfile, zlib.error)


def read_torch_file(path):
    """The object a ``torch.save`` file holds, tensors as numpy arrays.

    Raises :class:`TorchFileError` (one line naming ``path``) for anything else:
    unreadable files, damaged ones, pickles naming anything but tensors and containers,
    and sizes past what the file holds or :func:`byte_budget` allows.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise TorchFileError("%s: not a regular file" % path)
        with open(path, "rb") as handle:
            file_size = os.fstat(handle.fileno()).st_size
            budget = _Budget(file_size)
            head = handle.read(512)
            handle.seek(0)
            if zipfile.is_zipfile(handle):
                handle.seek(0)
                with zipfile.ZipFile(handle) as archive:
                    obj = _read_zip(archive, file_size, budget)
            elif len(head) >= 262 and head[257:262] == b"ustar":
                raise ValueError("a tar archive: the pre-0.1.10 torch.save format is not "
                                 "supported (load and re-save it with torch)")
            else:
                handle.seek(0)
                obj = _read_legacy(handle, file_size)
            return _materialise(obj, budget, {})
    except TorchFileError:
        raise
    except (IOError, OSError) as exc:
        raise TorchFileError("%s: cannot read (%s)" % (path, exc.strerror or exc))
    except RecursionError:
        raise TorchFileError("%s: not a readable PyTorch checkpoint: nested too deeply"
                             % path)
    except _UNREADABLE as exc:
        text = str(exc).strip().splitlines()
        raise TorchFileError("%s: not a readable PyTorch checkpoint: %s"
                             % (path, text[0] if text else type(exc).__name__))
