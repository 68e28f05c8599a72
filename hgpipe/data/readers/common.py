"""What every annotation reader shares: its error type, the validation-split bookkeeping
and the ``split=`` filter, so that all formats give identical records for one person."""
import os
import zlib

import numpy as np

from hgpipe.data import split as val_split
from hgpipe.data.schema import SPLITS
from hgpipe.limits import MAX_ANNOTATION_BYTES, megabytes

# a reader's ``split=`` argument: every record (None), or one of the shard splits
SPLIT_FILTERS = (None,) + SPLITS


class AnnotationError(ValueError):
    """An annotation file is missing, of an unknown format, or malformed (names the file)."""


class RecordList(list):
    """A reader's records with ``notes``: lines about the file a command prints (what a
    reader left out and why, when that is not an error), and ``crowd``: the crowd
    regions of a COCO-format val file (dicts in COCO's format, :mod:`.coco_json`) that
    OKS AP needs beside the val persons; empty for every other file."""

    def __init__(self, records=(), notes=(), crowd=()):
        super(RecordList, self).__init__(records)
        self.notes = list(notes)
        self.crowd = list(crowd)


def check_file_size(path, limit=MAX_ANNOTATION_BYTES):
    """Refuse an annotation file larger than ``limit`` before reading it (a sparse or
    runaway file must not be read into memory); returns its size."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise AnnotationError("%s cannot be read (%s)" % (path, exc.strerror or exc))
    if size > limit:
        raise AnnotationError("%s: %d bytes, larger than the %s an annotation file may be"
                              % (path, size, megabytes(limit)))
    return size


def _gunzip(raw, path, limit):
    """Every gzip member of ``raw``, unpacked to at most ``limit`` bytes: a few MB of
    gzip can unpack to gigabytes, so the stream is cut at the bound, never held whole."""
    parts, total = [], 0
    while raw:
        if raw[:2] != b"\x1f\x8b":
            raise AnnotationError("%s: data after the gzip stream is not gzip" % (path,))
        unpack = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = unpack.decompress(raw, limit + 1 - total)
            while True:
                parts.append(chunk)
                total += len(chunk)
                if total > limit:
                    raise AnnotationError("%s: unpacks to more than the %s an annotation "
                                          "file may be" % (path, megabytes(limit)))
                if unpack.eof or not unpack.unconsumed_tail:
                    break
                chunk = unpack.decompress(unpack.unconsumed_tail, limit + 1 - total)
        except zlib.error as exc:
            raise AnnotationError("%s: damaged gzip data (%s)" % (path, exc))
        if not unpack.eof:
            raise AnnotationError("%s: the gzip stream ends early (truncated file)" % (path,))
        raw = unpack.unused_data.rstrip(b"\0")  # gzip allows zero padding after a member
    return b"".join(parts)


def read_annotation_bytes(path, limit=MAX_ANNOTATION_BYTES):
    """The bytes of an annotation file, gzip unpacked (recognised by its magic bytes, not
    its name); the file and what it unpacks to are bounded by ``limit``."""
    check_file_size(path, limit)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)
    except (OSError, IOError) as exc:
        raise AnnotationError("%s cannot be read (%s)" % (path, exc.strerror or exc))
    if len(raw) > limit:
        raise AnnotationError("%s: larger than the %s an annotation file may be"
                              % (path, megabytes(limit)))
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(raw, path, limit)
    return raw


def source_name(path):
    """The short file name used in records' ``source`` ("file:where")."""
    return os.path.basename(str(path))


def check_split(split):
    if split not in SPLIT_FILTERS:
        raise ValueError("split must be one of None, 'train', 'val'; got %r" % (split,))


def select_split(records, split):
    """Keep all records (None), the training ones ('train') or the validation ones ('val')."""
    check_split(split)
    if split is None:
        return list(records)
    want = split == "val"
    return [r for r in records if bool(r.is_validation) == want]


def mark_by_key(record, path):
    """Set is_validation (and a missing head box) from the split, by official indices.

    A key that the split knows under another image name means the file numbers its
    persons differently from the official annolist: every later lookup would be wrong,
    so that is an error rather than a guess.
    """
    person = val_split.val_person(record.annolist_index, record.person_index)
    if person is None:
        return record._replace(is_validation=False)
    if person.image_name != record.image_name:
        raise AnnotationError(
            "%s: %s has annolist/annorect index (%d, %d), which the validation split "
            "knows as image %s: the file does not use the official MPII indices"
            % (path, record.describe(), record.annolist_index, record.person_index,
               person.image_name))
    head_box = record.head_box if record.head_box is not None else person.head_box.copy()
    return record._replace(is_validation=True, head_box=head_box)


def mark_by_match(records, use_center=True):
    """Set is_validation, indices and head box for records without official indices.

    A record that matches no validation person is a training record, unless its image
    is a validation image: the split never mixes an image, so such a record is most
    likely a validation person whose annotation differs a little, and training on it
    would leak validation data. It is left out (in neither split).
    """
    matches = val_split.match_val_people(
        [(r.image_name, r.center if use_center else None, r.joints, r.annotated)
         for r in records])
    marked = []
    for record, person in zip(records, matches):
        if person is None:
            if not val_split.is_val_image(record.image_name):
                marked.append(record._replace(is_validation=False))
            continue
        head_box = record.head_box if record.head_box is not None else person.head_box.copy()
        marked.append(record._replace(is_validation=True, head_box=head_box,
                                      annolist_index=person.annolist_index,
                                      person_index=person.person_index))
    return marked


def as_float(value, what, where):
    """float(value) with an AnnotationError that says which field of which entry failed."""
    if isinstance(value, float):
        return value  # the common case, kept cheap: readers call this ~10^5 times
    if value is None:
        raise AnnotationError("%s: %s is missing" % (where, what))
    try:
        result = float(np.asarray(value, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise AnnotationError("%s: %s is not a number (%r)" % (where, what, value))
    return result
