"""Reader of the common JSON conversion of MPII (``mpii_annotations.json[.gz]``).

A list of dicts: ``img_paths``, ``objpos`` [x, y] and ``scale_provided`` (raw official,
rounded to 3 decimals), ``joint_self`` 16 x [x, y, is_visible] with [0, 0, 0] meaning
"not annotated", 1-based ``annolist_index``/``people_index`` and ``isValidation``.
The conversion lost two things the official file has: head boxes (validation persons get
theirs from the split) and unknown visibility (MPII's empty ``is_visible`` became 1).
"""
import json
import os

import numpy as np

from hgpipe.data.readers.common import (AnnotationError, as_float, check_split,
                                        mark_by_key, read_annotation_bytes, select_split,
                                        source_name)
from hgpipe.data import split as val_split
from hgpipe.data.readers.head_boxes import HEAD_BOXES_FILE, read_head_boxes
from hgpipe.data.records import make_record
from hgpipe.joints import NUM_JOINTS

REQUIRED_KEYS = ("img_paths", "objpos", "scale_provided", "joint_self",
                 "annolist_index", "people_index")


def load_json(path):
    """Parse a .json or .json.gz file (gzip recognised by its magic bytes, not its name),
    within the size bounds of :mod:`hgpipe.limits`."""
    raw = read_annotation_bytes(path)
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise AnnotationError("%s is not UTF-8 text (%s)" % (path, exc))
    except ValueError as exc:
        raise AnnotationError("%s is not valid JSON (%s)" % (path, exc))
    except RecursionError:
        raise AnnotationError("%s: JSON nested too deeply (an annotation file nests a "
                              "few levels)" % (path,))


def _index(value, key, where):
    if isinstance(value, float) and value.is_integer() and value >= 1:
        return int(value)  # the common case, without the checks' cost
    value = as_float(value, key, where)
    if not value.is_integer() or value < 1:
        raise AnnotationError("%s: %s must be a 1-based integer, got %r" % (where, key, value))
    return int(value)


def _joint_array(joint_self, where):
    try:
        joint_self = np.array(joint_self, dtype=np.float64)
    except (TypeError, ValueError):
        raise AnnotationError("%s: joint_self is not a numeric array" % (where,))
    if joint_self.ndim != 2 or joint_self.shape[0] != NUM_JOINTS or \
            joint_self.shape[1] not in (2, 3):
        raise AnnotationError("%s: joint_self must be %d x [x, y, vis], got shape %s"
                              % (where, NUM_JOINTS, joint_self.shape))
    return joint_self


def parse_entry(entry, where):
    """One JSON person dict -> PersonRecord (is_validation not yet marked)."""
    if not isinstance(entry, dict):
        raise AnnotationError("%s: expected an object, got %s" % (where, type(entry).__name__))
    missing = [k for k in REQUIRED_KEYS if k not in entry]
    if missing:
        raise AnnotationError("%s: missing %s" % (where, ", ".join(missing)))
    joint_self = _joint_array(entry["joint_self"], where)
    annotated = joint_self.any(axis=1)  # [0, 0, 0] = not annotated
    if joint_self.shape[1] == 3:
        visible = np.where(annotated, joint_self[:, 2] > 0, 0)
    else:
        visible = np.where(annotated, -1, 0)
    objpos = entry["objpos"]
    if not isinstance(objpos, (list, tuple)) or len(objpos) != 2:
        raise AnnotationError("%s: objpos must be [x, y], got %r" % (where, objpos))
    return make_record(
        entry["img_paths"], joint_self[:, :2], annotated, visible,
        center=(as_float(objpos[0], "objpos", where), as_float(objpos[1], "objpos", where)),
        scale=as_float(entry["scale_provided"], "scale_provided", where),
        annolist_index=_index(entry["annolist_index"], "annolist_index", where),
        person_index=_index(entry["people_index"], "people_index", where), source=where)


def read_mpii_json(path, split=None):
    """All persons of the JSON conversion, marked from the Tompson split.

    The file's own ``isValidation`` must agree with the split: a disagreement means the
    file is not the standard conversion, and silently choosing one would move persons
    between training and evaluation.
    """
    check_split(split)
    return select_split(records_from_entries(load_json(path), path), split)


def _is_official_mpii(parsed):
    """True if the file numbers its persons like the official annolist: some person's
    (annolist, annorect) key names the same image in the Tompson split."""
    for record in parsed:
        person = val_split.val_person(record.annolist_index, record.person_index)
        if person is not None and person.image_name == record.image_name:
            return True
    return False


def records_from_entries(entries, path):
    """Records of already-parsed JSON ``entries`` (``path`` names the file in messages).

    For the MPII conversion the split comes from the Tompson list (and must agree with
    the file's ``isValidation``). A file in the same format whose persons are not MPII's
    (the demo data, a user's own set) keeps its own ``isValidation`` and may give head
    boxes in an extra per-person key ``head_box`` [x1, y1, x2, y2] or in a
    ``head_boxes.json`` beside the file (see :mod:`hgpipe.data.readers.head_boxes`).
    """
    if not isinstance(entries, list):
        raise AnnotationError("%s: expected a list of person objects" % (path,))
    base = source_name(path)
    parsed = [parse_entry(entry, "%s:%d" % (base, k)) for k, entry in enumerate(entries)]
    official = _is_official_mpii(parsed)
    sibling_boxes = {}
    if not official and isinstance(path, str):
        boxes_path = os.path.join(os.path.dirname(path), HEAD_BOXES_FILE)
        if os.path.isfile(boxes_path):
            sibling_boxes = read_head_boxes(boxes_path)
    records = []
    disagreements = []
    for k, (entry, record) in enumerate(zip(entries, parsed)):
        where = "%s:%d" % (base, k)
        flag = entry.get("isValidation")
        flag = None if flag is None else bool(as_float(flag, "isValidation", where))
        if official:
            record = mark_by_key(record, path)
            if flag is not None and flag != record.is_validation:
                disagreements.append(record)
        else:
            head_box = entry.get("head_box")
            if head_box is None:
                head_box = sibling_boxes.get((record.annolist_index, record.person_index))
            else:
                head_box = np.asarray([as_float(v, "head_box", where) for v in head_box])
                if head_box.shape != (4,):
                    raise AnnotationError("%s: head_box must be [x1, y1, x2, y2]" % where)
            record = record._replace(is_validation=bool(flag), head_box=head_box)
        records.append(record)
    if disagreements:
        first = disagreements[0]
        raise AnnotationError(
            "%s: isValidation disagrees with the Tompson validation split for %d persons "
            "(first: %s, split says %s)" % (path, len(disagreements), first.describe(),
                                           "val" if first.is_validation else "train"))
    return records
