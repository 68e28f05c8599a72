"""The Tompson et al. MPII validation split, shipped as package data.

Every hourglass paper evaluates on the same 2,958 persons (2,729 images) chosen by Tompson
et al.; PCKh numbers are only comparable on exactly that set, in that order. The split is
committed as ``mpii_val_split.txt`` beside this module (one line per person, canonical
order) so that no reader depends on which annotation format a user has: formats that know
the official (annolist, annorect) indices look persons up by key, the others are matched
by image name plus objpos or head position. Each line also carries the person's head box
(``headboxes_src`` of ``detections_our_format.mat``, the one every published PCKh table
uses), so formats without head boxes still get their PCKh normaliser.

The file is regenerated from the public MPII files by :func:`build_split_file`; a test
checks that this reproduces the committed file byte for byte.
"""
import gzip
import json
import os
from typing import NamedTuple, Tuple

import numpy as np

from hgpipe.joints import HEAD_TOP, UPPER_NECK

SPLIT_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpii_val_split.txt")

# A head point (mean of annotated upper-neck / head-top) may sit this far outside its
# head box and still match it: text formats truncate coordinates to integers.
HEAD_MATCH_MARGIN = 2.0
# An objpos read from another format matches the split's objpos within this distance.
OBJPOS_MATCH_TOLERANCE = 0.5

_COLUMNS = ("annolist_index", "person_index", "image_name", "objpos_x", "objpos_y",
            "head_x1", "head_y1", "head_x2", "head_y2")


class ValPerson(NamedTuple):
    annolist_index: int      # 1-based official annolist index
    person_index: int        # 1-based official annorect index
    image_name: str
    objpos: Tuple[float, float]
    head_box: np.ndarray     # (4,) x1, y1, x2, y2 in MPII 1-based pixels


class _Split(object):
    """The parsed split file with the lookups readers need."""

    def __init__(self, persons):
        self.persons = persons
        self.by_key = {}
        self.by_image = {}
        for person in persons:
            key = (person.annolist_index, person.person_index)
            if key in self.by_key:
                raise ValueError("validation split lists %s twice" % (key,))
            self.by_key[key] = person
            self.by_image.setdefault(person.image_name, []).append(person)


_cache = {}


def load_split(path=SPLIT_FILE):
    """Parse a split file into a list of :class:`ValPerson` in canonical order."""
    persons = []
    with open(path, "r") as handle:
        for line_no, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split()
            if len(fields) != len(_COLUMNS):
                raise ValueError("%s:%d: expected %d columns (%s), got %d" % (
                    path, line_no, len(_COLUMNS), " ".join(_COLUMNS), len(fields)))
            try:
                numbers = [float(v) for v in fields[3:]]
                person = ValPerson(int(fields[0]), int(fields[1]), fields[2],
                                   (numbers[0], numbers[1]), np.array(numbers[2:]))
            except ValueError:
                raise ValueError("%s:%d: malformed number in %r" % (path, line_no, line))
            persons.append(person)
    return persons


def _split():
    if "default" not in _cache:
        _cache["default"] = _Split(load_split(SPLIT_FILE))
    return _cache["default"]


def val_persons():
    """All validation persons (:class:`ValPerson`) in canonical order."""
    return list(_split().persons)


def val_keys():
    """Ordered (annolist_index, person_index) pairs, 1-based, of the validation persons."""
    return [(p.annolist_index, p.person_index) for p in _split().persons]


def val_person(annolist_index, person_index):
    """The :class:`ValPerson` with this key, or None."""
    return _split().by_key.get((int(annolist_index), int(person_index)))


def is_val(annolist_index, person_index):
    """True if this official (annolist, annorect) person belongs to the validation split."""
    return (int(annolist_index), int(person_index)) in _split().by_key


def is_val_image(image_name):
    """True if the image holds validation persons (the split never mixes an image)."""
    return image_name in _split().by_image


def _head_point(joints, annotated):
    if joints is None or annotated is None:
        return None
    picks = [j for j in (UPPER_NECK, HEAD_TOP) if annotated[j]]
    if not picks:
        return None
    return np.asarray(joints, dtype=np.float64)[picks].mean(axis=0)


def match_val_person(image_name, center=None, joints=None, annotated=None):
    """Find the validation person a record without official indices describes.

    Used by formats that lost the (annolist, annorect) indices. Evidence, strongest first:
    ``center`` equal to the split's objpos; the head (mean of annotated upper-neck and
    head-top, which MPII derived from the head box) inside a head box; and, when neither
    is available, an image holding a single validation person. Returns the
    :class:`ValPerson` or None (ambiguous or not a validation person).
    """
    candidates = _split().by_image.get(image_name, [])
    if not candidates:
        return None
    center_known = center is not None and np.all(np.isfinite(center))
    if center_known:
        hits = [p for p in candidates
                if np.all(np.abs(np.asarray(p.objpos) - center) <= OBJPOS_MATCH_TOLERANCE)]
        if len(hits) == 1:
            return hits[0]
    head = _head_point(joints, annotated)
    if head is not None:
        m = HEAD_MATCH_MARGIN
        hits = [p for p in candidates
                if p.head_box[0] - m <= head[0] <= p.head_box[2] + m
                and p.head_box[1] - m <= head[1] <= p.head_box[3] + m]
        return hits[0] if len(hits) == 1 else None
    if len(candidates) == 1 and not center_known:
        return candidates[0]
    return None


def match_val_people(queries):
    """:func:`match_val_person` for many records at once, plus elimination per image.

    ``queries`` is a list of (image_name, center, joints, annotated). A record with no
    evidence at all (no usable centre, no head joint) in an image where every other
    validation person is already claimed gets the one left over; a validation person
    claimed twice goes to the first claim only. Returns a list of ValPerson or None.
    """
    matches = [match_val_person(*query) for query in queries]
    claimed = set()
    for k, person in enumerate(matches):
        if person is None:
            continue
        key = (person.annolist_index, person.person_index)
        if key in claimed:
            matches[k] = None
        claimed.add(key)
    open_records = {}
    for k, (image_name, center, joints, annotated) in enumerate(queries):
        no_center = center is None or not np.all(np.isfinite(center))
        if matches[k] is None and no_center and _head_point(joints, annotated) is None:
            open_records.setdefault(image_name, []).append(k)
    for image_name, ks in open_records.items():
        left = [p for p in _split().by_image.get(image_name, [])
                if (p.annolist_index, p.person_index) not in claimed]
        if len(ks) == 1 and len(left) == 1:
            matches[ks[0]] = left[0]
    return matches


# --------------------------------------------------------------------------- building


def _format_number(value):
    """Integers without a decimal point, everything else as Python's shortest repr."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _read_val_sources(shared_mpii_dir):
    """Val persons from the JSON conversion, cross-checked against valid.h5."""
    import h5py
    import scipy.io

    json_path = os.path.join(shared_mpii_dir, "annotations", "mpii_annotations.json.gz")
    h5_path = os.path.join(shared_mpii_dir, "val", "valid.h5")
    gt_path = os.path.join(shared_mpii_dir, "val", "detections_our_format.mat")
    with gzip.open(json_path, "rt") as handle:
        entries = json.load(handle)
    val = [e for e in entries if float(e["isValidation"]) == 1.0]
    keys = [(int(e["annolist_index"]), int(e["people_index"])) for e in val]
    names = [str(e["img_paths"]) for e in val]
    objpos = [(float(e["objpos"][0]), float(e["objpos"][1])) for e in val]

    with h5py.File(h5_path, "r") as h5:
        h5_keys = [(int(a) + 1, int(p) + 1) for a, p in zip(h5["index"][:], h5["person"][:])]
        h5_names = [n.decode("ascii") if isinstance(n, bytes) else str(n)
                    for n in h5["imgname"][:]]
    if h5_keys != keys or h5_names != names:
        raise ValueError("%s and %s disagree on the validation persons or their order"
                         % (json_path, h5_path))

    boxes = scipy.io.loadmat(gt_path)["headboxes_src"]  # (2, 2, N): [x1 y1], [x2 y2]
    boxes = np.transpose(boxes, (2, 0, 1)).reshape(-1, 4)
    if len(boxes) != len(keys):
        raise ValueError("%s has %d head boxes for %d validation persons"
                         % (gt_path, len(boxes), len(keys)))
    return keys, names, objpos, boxes


def build_split_file(shared_mpii_dir, out_path=SPLIT_FILE):
    """Regenerate the split file from the public MPII files; returns the person count.

    Sources (relative to ``shared_mpii_dir``): ``annotations/mpii_annotations.json.gz``
    (``isValidation`` membership and order, 1-based indices, image names, objpos),
    ``val/valid.h5`` (``index``/``person``, 0-based: must agree) and
    ``val/detections_our_format.mat`` (``headboxes_src``, same order).
    """
    keys, names, objpos, boxes = _read_val_sources(shared_mpii_dir)
    lines = [
        "# Tompson et al. MPII validation split: %d persons in canonical order "
        "(valid.h5 / detections_our_format.mat)." % len(keys),
        "# Generated by hgpipe.data.split.build_split_file from the public MPII files; "
        "do not edit.",
        "# Indices are 1-based (official annolist / annorect); coordinates are MPII "
        "1-based pixels;",
        "# objpos is the raw official centre, head box = headboxes_src.",
        "# columns: " + " ".join(_COLUMNS),
    ]
    for (a, p), name, pos, box in zip(keys, names, objpos, boxes):
        lines.append(" ".join([str(a), str(p), name] +
                              [_format_number(v) for v in tuple(pos) + tuple(box)]))
    text = "\n".join(lines) + "\n"
    with open(out_path, "w", newline="\n") as handle:
        handle.write(text)
    if os.path.abspath(out_path) == os.path.abspath(SPLIT_FILE):
        _cache.clear()
    return len(keys)
