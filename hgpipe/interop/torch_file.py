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
view])``. Unpickling executes the globals a pickle names, so this reader resolves only a
short list of names to harmless Python of its own (tensor rebuilders, storage types,
``collections.OrderedDict``, ``set``...); every other global becomes an inert
:class:`Unresolved` placeholder that records its arguments and runs nothing. A file is
therefore read, never executed.
"""
import collections
import io
import pickle
import struct
import zipfile

import numpy as np

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch/serialization.py MAGIC_NUMBER
LEGACY_PROTOCOL_VERSION = 1001

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


class TorchFileError(ValueError):
    """Not a PyTorch checkpoint this reader understands; the message names the file."""


class Unresolved(object):
    """Stands for a global the reader does not resolve: it keeps what the pickle passed
    to it (arguments, state) and does nothing else."""

    module = name = None

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs
        self.state = None

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):  # pickled dict subclasses append items this way
        self.__dict__.setdefault("items", {})[key] = value

    def __repr__(self):
        return "<unresolved %s.%s>" % (self.module, self.name)


def _unresolved_class(module, name):
    return type(str(name), (Unresolved,), {"module": module, "name": name})


class StorageType(object):
    """A torch storage class named by the pickle (``torch.FloatStorage``...)."""

    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class Storage(object):
    """One storage of the file: its elements arrive after unpickling (legacy) or are
    read from the archive on first use (zip)."""

    def __init__(self, key, storage_type, numel):
        self.key = key
        self.type = storage_type
        self.numel = int(numel)
        self.elements = None  # 1-D numpy array, native byte order


class TensorRef(object):
    """A tensor as the pickle describes it; :meth:`to_numpy` once its storage is read."""

    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)

    def to_numpy(self):
        elements = self.storage.elements
        if elements is None:
            raise ValueError("storage %s was never read" % (self.storage.key,))
        if any(s < 0 for s in self.size + self.stride):
            raise ValueError("negative size or stride in a tensor of storage %s"
                             % (self.storage.key,))
        if 0 in self.size:
            array = np.zeros(self.size, elements.dtype)
        else:
            last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
            if self.offset < 0 or last >= elements.size:
                raise ValueError("a tensor reaches element %d of storage %s, which has %d"
                                 % (last, self.storage.key, elements.size))
            view = np.lib.stride_tricks.as_strided(
                elements[self.offset:], shape=self.size,
                strides=tuple(s * elements.itemsize for s in self.stride))
            array = np.array(view)
        if self.storage.type.name == "BFloat16Storage":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, hooks,
                       dtype, *unused):
    if isinstance(dtype, StorageType) and dtype.name != storage.type.name:
        storage.type = dtype  # an UntypedStorage: the tensor gives the element type
    return TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    return func(*args)


def _codecs_encode(text, encoding="utf-8"):
    return text.encode(encoding)


_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
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
}


class _Unpickler(pickle.Unpickler):
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
        return _unresolved_class(module, name)

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise ValueError("unexpected persistent id %r" % (pid,))
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module":  # a pickled nn.Module class (whole-model saves)
            return _unresolved_class("torch.nn", "Module")
        if kind != "storage" or len(pid) < 5 or not isinstance(pid[1], StorageType):
            raise ValueError("unexpected persistent id %r" % (pid[:2],))
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        return self._load_storage(storage_type, str(key), numel, view)


def _materialise(value):
    """The unpickled object with every TensorRef replaced by a numpy array."""
    if isinstance(value, TensorRef):
        return value.to_numpy()
    if isinstance(value, collections.OrderedDict):
        return collections.OrderedDict((k, _materialise(v)) for k, v in value.items())
    if isinstance(value, dict):
        return {k: _materialise(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_materialise(v) for v in value)
    return value


# ------------------------------------------------------------------------------- zip

def _read_zip(archive):
    names = archive.namelist()
    pickles = [name for name in names if name.endswith("data.pkl")
               and name.count("/") <= 1]
    if len(pickles) != 1:
        raise ValueError("a zip without one data.pkl (not a torch.save file; a TorchScript "
                         "archive or another zip?)")
    prefix = pickles[0][:-len("data.pkl")]
    order = "little"
    if prefix + "byteorder" in names:
        order = archive.read(prefix + "byteorder").decode("ascii").strip()
        if order not in ("little", "big"):
            raise ValueError("unknown byte order %r" % order)
    storages = {}

    def load_storage(storage_type, key, numel, view):
        if key not in storages:
            record = prefix + "data/" + key
            if record not in names:
                raise ValueError("storage record %s is missing" % record)
            data = archive.read(record)
            storage = Storage(key, storage_type, numel)
            storage.elements = _elements(data, storage_type, order, key)
            storages[key] = storage
        return storages[key]

    with archive.open(pickles[0]) as handle:
        obj = _Unpickler(io.BytesIO(handle.read()), load_storage).load()
    return obj


def _elements(data, storage_type, order, key):
    dtype = storage_type.dtype.newbyteorder("<" if order == "little" else ">")
    if len(data) % dtype.itemsize:
        raise ValueError("storage %s holds %d bytes, not a whole number of %d-byte elements"
                         % (key, len(data), dtype.itemsize))
    return np.frombuffer(data, dtype).astype(dtype.newbyteorder("="))


# ---------------------------------------------------------------------------- legacy

def _read_legacy(handle):
    def load(what):
        try:
            return pickle.Unpickler(handle, encoding="utf-8").load()
        except Exception as exc:
            raise ValueError("cannot read the %s (%s)" % (what, exc))

    magic = load("header")
    if magic != LEGACY_MAGIC_NUMBER:
        raise ValueError("not a PyTorch checkpoint (no torch.save magic number)")
    version = load("protocol version")
    if version != LEGACY_PROTOCOL_VERSION:
        raise ValueError("unsupported torch.save protocol version %r" % (version,))
    sys_info = load("sys info")
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    storages = collections.OrderedDict()
    views = {}

    def load_storage(storage_type, key, numel, view):
        if key not in storages:
            storages[key] = Storage(key, storage_type, numel)
        root = storages[key]
        if view is None:
            return root
        view_key, offset, view_size = view
        view_key = str(view_key)
        if view_key not in views:
            views[view_key] = (root, int(offset), int(view_size))
        return _StorageView(view_key, *views[view_key])

    obj = _Unpickler(handle, load_storage).load()
    keys = load("storage keys")
    order = "<" if little else ">"
    for key in keys:
        key = str(key)
        if key not in storages:
            raise ValueError("storage %s is listed but never used" % key)
        storage = storages[key]
        header = handle.read(8)
        if len(header) != 8:
            raise ValueError("file ends before storage %s" % key)
        (count,) = struct.unpack(order + "q", header)
        if count != storage.numel:
            raise ValueError("storage %s holds %d elements, its tensors say %d"
                             % (key, count, storage.numel))
        nbytes = count * storage.type.dtype.itemsize
        data = handle.read(nbytes)
        if count < 0 or len(data) != nbytes:
            raise ValueError("file ends inside storage %s (%d of %d bytes)"
                             % (key, len(data), max(nbytes, 0)))
        storage.elements = _elements(data, storage.type, "little" if little else "big", key)
    missing = [key for key, s in storages.items() if s.elements is None]
    if missing:
        raise ValueError("storage %s is used but not in the file" % missing[0])
    for view in _StorageView.instances(obj):
        view.resolve()
    return obj


class _StorageView(Storage):
    """A storage view (pre-0.4 files): a slice of a root storage."""

    def __init__(self, key, root, offset, numel):
        Storage.__init__(self, key, root.type, numel)
        self.root = root
        self.view_offset = offset

    def resolve(self):
        self.elements = self.root.elements[self.view_offset:self.view_offset + self.numel]

    @staticmethod
    def instances(obj):
        found = []

        def walk(value):
            if isinstance(value, TensorRef):
                if isinstance(value.storage, _StorageView):
                    found.append(value.storage)
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    walk(item)
        walk(obj)
        return found


# ------------------------------------------------------------------------------- api

def read_torch_file(path):
    """The object a ``torch.save`` file holds, tensors as numpy arrays.

    Raises :class:`TorchFileError` (one line naming ``path``) for anything else.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
            handle.seek(0)
            if zipfile.is_zipfile(handle):
                handle.seek(0)
                with zipfile.ZipFile(handle) as archive:
                    obj = _read_zip(archive)
            elif len(head) >= 262 and head[257:262] == b"ustar":
                raise ValueError("a tar archive: the pre-0.1.10 torch.save format is not "
                                 "supported (load and re-save it with torch)")
            else:
                handle.seek(0)
                obj = _read_legacy(handle)
        return _materialise(obj)
    except (IOError, OSError) as exc:
        raise TorchFileError("%s: cannot read (%s)" % (path, exc.strerror or exc))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, EOFError,
            pickle.UnpicklingError, struct.error, zipfile.BadZipfile) as exc:
        if isinstance(exc, TorchFileError):
            raise
        text = str(exc).strip().splitlines()
        raise TorchFileError("%s: not a readable PyTorch checkpoint: %s"
                             % (path, text[0] if text else type(exc).__name__))

