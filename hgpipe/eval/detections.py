"""Person boxes from any detector: a detections file in COCO results format.

The COCO results format (what ``COCO.loadRes`` and every COCO detector's test script
write) is a JSON list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``
with ``x, y`` the box's top-left corner in 0-based pixel-edge coordinates (pixel i spans
[i, i + 1)). hgpipe's frame is 1-based pixel centres (x = 1 is the centre of the first
column, :mod:`hgpipe.eval.predict`), so the box's edges are at ``x + 0.5`` and
``x + w + 0.5`` there.

``image_id`` is matched to an input by its file name (``000000397133.jpg``), its stem
(``000000397133``) or, when the stem is all digits, its number (397133, COCO's own
ids). A video frame is ``"clip.mp4/12"`` or ``"clip/12"`` (0-based frame 12), or the
bare frame number when one video is given.
"""
import json
import os

import numpy as np

PERSON_CATEGORY = 1  # COCO's "person"


class DetectionsError(ValueError):
    """The detections file is missing, not JSON or not in COCO results format."""


def read_detections(path, min_score=0.0, category=PERSON_CATEGORY):
    """{image_id (as given, str or int): [(x1, y1, x2, y2, score) in 1-based pixels]},
    best first. Detections of another category, or below ``min_score``, are dropped."""
    try:
        with open(path) as handle:
            items = json.load(handle)
    except (IOError, OSError) as exc:
        raise DetectionsError("%s: cannot read: %s" % (path, exc.strerror or exc))
    except ValueError as exc:
        raise DetectionsError("%s: not a JSON file (%s)" % (path, exc))
    if not isinstance(items, list):
        raise DetectionsError("%s: expected a JSON list of detections (COCO results "
                              "format: image_id, category_id, bbox [x, y, w, h], score)"
                              % path)
    boxes = {}
    for k, item in enumerate(items):
        where = "%s: detection %d" % (path, k)
        if not isinstance(item, dict) or "image_id" not in item or "bbox" not in item:
            raise DetectionsError("%s: needs image_id and bbox [x, y, w, h]" % where)
        if category is not None and item.get("category_id", category) != category:
            continue
        try:
            x, y, w, h = (float(v) for v in item["bbox"])
            score = float(item.get("score", 1.0))
        except (TypeError, ValueError):
            raise DetectionsError("%s: bbox must be four numbers [x, y, w, h]" % where)
        if not (np.all(np.isfinite([x, y, w, h])) and w > 0 and h > 0):
            raise DetectionsError("%s: bbox %s has no area" % (where, item["bbox"]))
        if score < min_score:
            continue
        boxes.setdefault(item["image_id"], []).append(
            (x + 0.5, y + 0.5, x + w + 0.5, y + h + 0.5, score))
    for key in boxes:
        boxes[key].sort(key=lambda box: -box[4])
    return boxes


def image_keys(path):
    """The image_id values that name an image file (see module)."""
    name = os.path.basename(path)
    stem = os.path.splitext(name)[0]
    keys = [name, stem]
    if stem.isdigit():
        keys.append(int(stem))
    return keys


def frame_keys(path, index, single_video):
    """The image_id values that name frame ``index`` of a video (see module)."""
    name = os.path.basename(path)
    keys = ["%s/%d" % (name, index), "%s/%d" % (os.path.splitext(name)[0], index)]
    if single_video:
        keys += [index, str(index)]
    return keys


def boxes_for(detections, keys):
    """Every box filed under any of ``keys`` (a file may use several spellings), best
    first."""
    found = [box for key in keys for box in detections.get(key, ())]
    return sorted(found, key=lambda box: -box[4])


def crowded(boxes, min_inside=0.5):
    """For each box, how many *other* boxes have at least ``min_inside`` of their area
    inside it: a box that holds another person gives the model two people where it
    was trained on one, and its joints may mix them."""
    boxes = np.asarray([b[:4] for b in boxes], dtype=np.float64).reshape(-1, 4)
    counts = []
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        n = 0
        for j, (a1, b1, a2, b2) in enumerate(boxes):
            if i == j:
                continue
            inter = max(0.0, min(x2, a2) - max(x1, a1)) * max(0.0, min(y2, b2) - max(y1, b1))
            if inter >= min_inside * (a2 - a1) * (b2 - b1):
                n += 1
        counts.append(n)
    return counts
