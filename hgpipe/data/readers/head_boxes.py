"""Head boxes for JSON-format datasets that are not MPII's own (e.g. the demo data).

The JSON conversion of MPII dropped head boxes; for MPII's validation persons they come
from the Tompson split file. Other datasets in that format can keep theirs in a
``head_boxes.json`` beside the annotation file: {"annolist_index,people_index":
[x1, y1, x2, y2]}, 1-based pixels like the joints.
"""
import json

import numpy as np

from hgpipe.data.readers.common import AnnotationError, read_annotation_bytes

HEAD_BOXES_FILE = "head_boxes.json"


def read_head_boxes(path):
    """Parse head_boxes.json into {(annolist_index, people_index): (4,) x1, y1, x2, y2}."""
    try:
        raw = json.loads(read_annotation_bytes(path).decode("utf-8"))
    except (AnnotationError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise AnnotationError("%s: cannot read head boxes (%s)" % (path, exc))
    except RecursionError:
        raise AnnotationError("%s: cannot read head boxes (JSON nested too deeply)" % path)
    if not isinstance(raw, dict):
        raise AnnotationError("%s: expected an object mapping \"annolist,person\" to a box" % path)
    boxes = {}
    for key, box in raw.items():
        parts = key.split(",")
        try:
            index = (int(parts[0]), int(parts[1])) if len(parts) == 2 else None
            box = np.asarray(box, dtype=np.float64)
        except (TypeError, ValueError):
            index = None
        if index is None or box.shape != (4,) or not (box[0] < box[2] and box[1] < box[3]):
            raise AnnotationError("%s: entry %r must be \"annolist_index,people_index\": "
                             "[x1, y1, x2, y2] with x1 < x2 and y1 < y2" % (path, key))
        boxes[index] = box
    return boxes
