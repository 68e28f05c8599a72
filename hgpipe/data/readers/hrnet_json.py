"""Reader of the mmpose / HRNet MPII list format (``train.json``, ``valid.json``).

A list of ``{image, center, scale, joints: 16 x [x, y], joints_vis: 16}``. Checked
against the JSON conversion for the same persons: ``center`` is the raw official objpos,
``scale`` the raw official scale (to 6 decimals), ``joints`` are MPII 1-based pixels,
with [-1, -1] where ``joints_vis`` is 0 -- and ``joints_vis`` is the *annotated* flag,
not MPII's visibility. Those codebases subtract 1 and apply +15*s / x1.25 at load time,
so the file itself needs no conversion; visibility is unknown (-1). Entries without
joints (their test.json) are not annotated persons and are skipped. The format has no
official indices: validation persons are found by image name and objpos.
"""
import numpy as np

from hgpipe.data.readers.common import (AnnotationError, as_float, check_split,
                                        mark_by_match, select_split, source_name)
from hgpipe.data.readers.mpii_json import load_json
from hgpipe.data.records import make_record
from hgpipe.joints import NUM_JOINTS


def parse_item(item, where):
    """One list entry -> PersonRecord, or None for an entry without joints."""
    if not isinstance(item, dict):
        raise AnnotationError("%s: expected an object, got %s" % (where, type(item).__name__))
    if "joints" not in item:
        return None
    missing = [k for k in ("image", "center", "scale") if k not in item]
    if missing:
        raise AnnotationError("%s: missing %s" % (where, ", ".join(missing)))
    try:
        joints = np.asarray(item["joints"], dtype=np.float64)
        center = np.asarray(item["center"], dtype=np.float64)
    except (TypeError, ValueError):
        raise AnnotationError("%s: joints/center are not numeric" % (where,))
    if joints.shape != (NUM_JOINTS, 2) or center.shape != (2,):
        raise AnnotationError("%s: expected joints %d x 2 and center [x, y], got %s and %s"
                              % (where, NUM_JOINTS, joints.shape, center.shape))
    if "joints_vis" in item:
        try:
            flags = np.asarray(item["joints_vis"], dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise AnnotationError("%s: joints_vis is not numeric" % (where,))
        if flags.shape != (NUM_JOINTS,):
            raise AnnotationError("%s: joints_vis must have %d entries" % (where, NUM_JOINTS))
        if not np.all(np.isfinite(flags)):  # NaN > 0 would also warn on numpy < 1.19
            raise AnnotationError("%s: joints_vis must be finite numbers" % (where,))
        annotated = flags > 0
    else:
        annotated = ~np.all(joints == -1, axis=1)
    if np.all(center == -1):  # those codebases' marker for "no centre"
        center = np.array([np.nan, np.nan])
    return make_record(str(item["image"]), joints * annotated[:, None], annotated,
                       center=center, scale=as_float(item["scale"], "scale", where),
                       source=where)


def read_hrnet_json(path, split=None):
    """Annotated persons of an mmpose/HRNet list file, marked from the Tompson split."""
    check_split(split)
    return select_split(records_from_items(load_json(path), path), split)


def records_from_items(items, path):
    """Records of an already-parsed list (``path`` names the file in messages)."""
    if not isinstance(items, list):
        raise AnnotationError("%s: expected a list of person objects" % (path,))
    base = source_name(path)
    records = []
    for k, item in enumerate(items):
        record = parse_item(item, "%s:%d" % (base, k))
        if record is not None:
            records.append(record)
    return mark_by_match(records)
