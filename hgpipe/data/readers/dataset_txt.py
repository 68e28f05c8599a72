"""Reader and writer of the ``dataset.txt`` format of wbenbihi/hourglasstensorlfow.

One person per line, space-separated::

    IMAGE.jpgL x1 y1 x2 y2 x0 y0 x1 y1 ... x15 y15

``IMAGE.jpg`` is the image file name with one capital letter ``L`` appended (A, B, ...:
first, second, ... person of that image in the file), ``x1 y1 x2 y2`` a body box, then 16
joints in MPII order as MPII 1-based pixels, ``-1 -1`` for a missing joint. The reference
code truncates every value to int and drops lines whose joints are all -1 (so do we).

The format has no centre or scale. We derive them from the body box so that the
hourglass crop (centre moved down 15*s, side 200 * 1.25 * s, applied later in
:mod:`hgpipe.data.transforms`) covers the same square the reference code cropped: the box
padded by 20 % of its width/height on each side, squared to the longer padded side, about
the box centre. Hence ``s = 1.4 * max(w, h) / 250`` and ``objpos = box centre - (0, 15 s)``
(the reference's clipping to the image border is ignored: image sizes are not in the
file). A box of ``-1``s is replaced by the joints' bounding box. Visibility is unknown.
Letters are not official indices, so validation persons are matched by image and head
position (:func:`hgpipe.data.split.match_val_person`).
"""
import re
from collections import Counter

import numpy as np

from hgpipe.data.readers.common import (AnnotationError, check_split, mark_by_match,
                                        read_annotation_bytes, select_split, source_name)
from hgpipe.data.records import make_record
from hgpipe.data.transforms import BOX_PIXELS, CENTER_SHIFT_Y, SCALE_ENLARGE
from hgpipe.joints import NUM_JOINTS

BOX_PADDING = 0.2  # the reference's boxp: padding per side, as a fraction of the box size
NUM_FIELDS = 1 + 4 + 2 * NUM_JOINTS
MISSING = -1.0
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NAME = re.compile(r"^(.+\.(?i:jpe?g|png|bmp))([A-Z]?)$")


def box_to_center_scale(box):
    """Body box -> raw (objpos, scale) whose hourglass crop is the reference's crop."""
    x1, y1, x2, y2 = [float(v) for v in box]
    side = (1.0 + 2.0 * BOX_PADDING) * max(x2 - x1, y2 - y1)
    scale = side / (BOX_PIXELS * SCALE_ENLARGE)
    center = np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0 - CENTER_SHIFT_Y * scale])
    return center, scale


def center_scale_to_box(center, scale):
    """Inverse of :func:`box_to_center_scale`: the square body box to write for a record."""
    side = BOX_PIXELS * SCALE_ENLARGE * float(scale) / (1.0 + 2.0 * BOX_PADDING)
    cx, cy = float(center[0]), float(center[1]) + CENTER_SHIFT_Y * float(scale)
    return np.array([cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0])


def _split_name(token, where):
    match = _NAME.match(token)
    if match is None:
        raise AnnotationError("%s: %r is not an image file name followed by a person letter"
                              % (where, token))
    return match.group(1)


def parse_line(line, where):
    """One line -> PersonRecord, or None for a person without any joint."""
    fields = line.split()
    if len(fields) != NUM_FIELDS:
        raise AnnotationError("%s: expected %d fields (NAME x1 y1 x2 y2 and %d x y pairs), "
                              "got %d" % (where, NUM_FIELDS, NUM_JOINTS, len(fields)))
    name = _split_name(fields[0], where)
    try:
        numbers = np.array([float(v) for v in fields[1:]])
    except ValueError:
        raise AnnotationError("%s: non-numeric value in %r" % (where, line.strip()))
    box, joints = numbers[:4], numbers[4:].reshape(NUM_JOINTS, 2)
    annotated = ~np.all(joints == MISSING, axis=1)
    if not annotated.any():
        return None
    if np.all(box[:2] == MISSING):
        used = joints[annotated]
        box = np.concatenate([used.min(axis=0), used.max(axis=0)])
    center, scale = box_to_center_scale(box)
    return make_record(name, joints * annotated[:, None], annotated, center=center,
                       scale=scale, source=where)


def read_dataset_txt(path, split=None):
    """Persons of a ``dataset.txt`` file, marked from the Tompson split."""
    check_split(split)
    base = source_name(path)
    records = []
    try:
        lines = read_annotation_bytes(path).decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise AnnotationError("%s cannot be read (not UTF-8 text: %s)" % (path, exc))
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = parse_line(line, "%s:%d" % (base, line_no))
        if record is not None:
            records.append(record)
    return select_split(mark_by_match(records, use_center=False), split)


def _numbers(values):
    """Space-separated, at most 4 decimals, no trailing ".0" ("100", "637.02", "-1")."""
    texts = [repr(round(v, 4)) for v in values]
    return " ".join([t[:-2] if t.endswith(".0") else t for t in texts])


def write_dataset_txt(records, path):
    """Write records as ``dataset.txt`` (for the reference code or a round trip); returns
    the number of lines. The body box written is the square whose reference crop equals
    the record's hourglass crop, so reading it back restores centre and scale."""
    seen = Counter()
    lines = []
    for record in records:
        where = record.describe()
        if record.problem() is not None:
            raise AnnotationError("cannot write %s: %s" % (where, record.problem()))
        letter_index = seen[record.image_name]
        if letter_index >= len(LETTERS):
            raise AnnotationError("cannot write %s: dataset.txt names at most %d persons "
                                  "per image" % (where, len(LETTERS)))
        seen[record.image_name] += 1
        if np.any(record.annotated & np.all(record.joints == MISSING, axis=1)):
            raise AnnotationError("cannot write %s: an annotated joint at (-1, -1) "
                                  "would read back as missing" % (where,))
        joints = np.where(record.annotated[:, None], record.joints, MISSING)
        values = center_scale_to_box(record.center, record.scale).tolist() + \
            joints.ravel().tolist()
        lines.append(record.image_name + LETTERS[letter_index] + " " + _numbers(values))
    with open(path, "w") as handle:
        handle.write("".join(line + "\n" for line in lines))
    return len(lines)
