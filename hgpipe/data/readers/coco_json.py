"""Reader of COCO-format keypoint files (COCO's ``person_keypoints_*.json``, or any set
made in that format) -> records of the set the file's category declares.

The file is indexed by pycocotools' ``COCO`` (through :mod:`hgpipe.cocotools`, the one
door to it), after checks that turn what would be a KeyError or TypeError inside it into
one line naming the file. The keypoint set: the one category with ``keypoints`` names
(and a 1-based ``skeleton``); COCO's 17 names are :data:`hgpipe.joints.COCO` with
COCOeval's sigmas; any other set needs ``sigmas`` in its category (one per keypoint, in
COCOeval's units: 0.026 for COCO's nose, as MMPose's dataset_info lists them,
``configs/_base_/datasets/coco.py:178``), since OKS AP cannot be computed without them.

Persons are chosen as MMPose's TopDown COCO loader chooses them (v0.29.0
``mmpose/datasets/datasets/top_down/topdown_coco_dataset.py``): crowd annotations are
left out (``:131``, ``getAnnIds(iscrowd=False)``); the box is clipped to the image and
an annotation whose clipped box or area is empty is left out (``:140-145``); so is one
without labelled keypoints (``:154-157``, ``max(keypoints) == 0`` or ``num_keypoints ==
0``). Each left-out annotation is counted by reason in the reader's notes, which
prepare prints. A keypoint with ``v > 0`` is annotated (``:163``), visible when ``v ==
2``.

Box to centre and scale as MMPose's ``TopDownGetBboxCenterScale`` (its COCO hourglass
config, ``configs/body/2d_kpt_sview_rgb_img/topdown_heatmap/coco/
hourglass52_coco_256x256.py:54, 72``: a square 256 input, ``padding=1.25``) computes
them with ``bbox_xywh2cs`` (``mmpose/core/bbox/transforms.py:57-65``): the box centre,
and the longer side (for a square input) over 200 px, times 1.25. hgpipe's one crop rule
(:func:`hgpipe.data.transforms.hourglass_box`) enlarges by the same 1.25 and moves the
centre 15 s down, so a record keeps ``max(w, h) / 200`` and the centre 15 s up.
Pixels are hgpipe's 1-based ones (:data:`hgpipe.cocotools.PIXEL_OFFSET` added).
Area, image id and annotation id stay on the records for OKS AP.

Crowd regions: a val file's crowd annotations (of the keypoint category) are no persons,
but COCOeval uses them: it marks a ground truth with ``iscrowd`` ignored
(pycocotools ``cocoeval.py`` ``_prepare``: ``gt['ignore'] = 'iscrowd' in gt and
gt['iscrowd']``, then ``num_keypoints == 0`` also ignores) and a prediction matched to
an ignored ground truth is ignored, neither true nor false positive (``evaluateImg``:
``dtIg[tind,dind] = gtIg[m]``); a crowd region may match any number of predictions, and
``computeOks`` scores a ground truth without labelled keypoints by its box. So the
records of a val file carry them (``RecordList.crowd``: id, image_id, bbox, area,
keypoints, num_keypoints as in the file; no segmentation, which keypoint OKS never
reads), and prepare keeps them beside the val shards (:data:`hgpipe.data.schema.CROWD_FILE`).

Split: a file whose name says ``val`` (``person_keypoints_val2017.json``, ``val.json``,
``valid.json``, ``person_keypoints_minival2014.json``) holds validation persons, any
other file training persons; give the train and the val file as two ``--annotations``.
"""
import math
import os
import re

import numpy as np

from hgpipe import cocotools
from hgpipe.data.readers.common import (AnnotationError, RecordList, check_split,
                                        select_split, source_name)
from hgpipe.data.readers.mpii_json import load_json
from hgpipe.data.records import make_record
from hgpipe.data.transforms import BOX_PIXELS, CENTER_SHIFT_Y
from hgpipe.joints import COCO, from_coco_category

REQUIRED = {"images": ("id", "file_name", "width", "height"),
            "annotations": ("id", "image_id", "category_id"),
            "categories": ("id",)}
VAL_NAME = re.compile(r"(^|[^a-z]|mini)val")   # val2017, _val, valid, validation, minival

SKIP_CROWD = "iscrowd"
SKIP_EMPTY_BOX = "no box, or an empty one inside the image"
SKIP_NO_KEYPOINTS = "num_keypoints == 0"
SKIP_OTHER_CATEGORY = "not of the keypoint category"


def is_coco_file(data):
    """A parsed JSON document that looks like a COCO-format file (a dict of lists)."""
    return isinstance(data, dict) and "annotations" in data and "images" in data


def is_val_file(path):
    """Whether a COCO-format file holds validation persons, by its name."""
    return VAL_NAME.search(os.path.basename(str(path)).lower()) is not None


def _is_id(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_structure(data, path):
    """The keys and id types pycocotools' index relies on, each problem one line."""
    for key, fields in REQUIRED.items():
        entries = data.get(key)
        if not isinstance(entries, list):
            raise AnnotationError("%s: %r must be a list" % (path, key))
        seen = set()
        for k, entry in enumerate(entries):
            where = "%s: %s[%d]" % (path, key, k)
            if not isinstance(entry, dict):
                raise AnnotationError("%s is not an object" % (where,))
            missing = [f for f in fields if f not in entry]
            if missing:
                raise AnnotationError("%s lacks %s" % (where, ", ".join(missing)))
            for field in fields:
                if field.endswith("id") and not _is_id(entry[field]):
                    raise AnnotationError("%s: %s must be an integer, got %r"
                                          % (where, field, entry[field]))
            if entry["id"] in seen:
                raise AnnotationError("%s: id %d appears twice" % (where, entry["id"]))
            seen.add(entry["id"])
    for k, image in enumerate(data["images"]):
        where = "%s: images[%d]" % (path, k)
        if not isinstance(image["file_name"], str) or not image["file_name"]:
            raise AnnotationError("%s: file_name must be a non-empty string" % (where,))
        for side in ("width", "height"):
            value = image[side]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or \
                    not math.isfinite(value) or value < 1:
                raise AnnotationError("%s: %s must be a positive number, got %r"
                                      % (where, side, value))


def keypoint_category(categories, path):
    """``(category id, KeypointSet)`` of the file's one category with keypoint names."""
    found = [c for c in categories if c.get("keypoints")]
    if not found:
        raise AnnotationError("%s: no category declares keypoints (a COCO keypoint file's "
                              "category has 'keypoints' names and a 'skeleton')" % (path,))
    if len(found) > 1:
        raise AnnotationError("%s: %d categories declare keypoints (%s); prepare reads one "
                              "keypoint set per file" % (path, len(found), ", ".join(
                                  repr(str(c.get("name"))) for c in found[:4])))
    category = found[0]
    name = str(category.get("name") or "custom")
    names, skeleton, sigmas = (category.get("keypoints"), category.get("skeleton") or [],
                               category.get("sigmas"))
    try:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("'keypoints' must be a list of names")
        if not isinstance(skeleton, list) or not all(
                isinstance(l, list) and len(l) == 2 and all(_is_id(j) for j in l)
                for l in skeleton):
            raise ValueError("'skeleton' must be a list of [a, b] 1-based keypoint ids")
        if sigmas is not None and not (isinstance(sigmas, list) and all(
                isinstance(s, (int, float)) and not isinstance(s, bool) for s in sigmas)):
            raise ValueError("'sigmas' must be a list of numbers")
        if tuple(names) == COCO.joint_names and sigmas is None:
            keypoints = COCO if tuple((a - 1, b - 1) for a, b in skeleton) == COCO.skeleton \
                else from_coco_category(category, name=name)
        elif sigmas is None:
            raise ValueError(
                "its %d keypoints are not COCO's and it has no 'sigmas': OKS AP needs one "
                "sigma per keypoint (COCOeval's units, e.g. 0.026 for COCO's nose); add "
                "\"sigmas\": [...] to the category" % len(names))
        else:
            keypoints = from_coco_category(category, name=name, sigmas=sigmas)
    except (ValueError, TypeError, OverflowError) as exc:
        raise AnnotationError("%s: category %r: %s" % (path, name, exc))
    return category["id"], keypoints


def _number(value, what, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise AnnotationError("%s: %s must be a finite number, got %r" % (where, what, value))
    return float(value)


def _keypoints(ann, k, where):
    """(xy (K, 2) 0-based, v (K,)) of an annotation's flat [x, y, v] * K list."""
    raw = ann.get("keypoints")
    if not isinstance(raw, list) or len(raw) != 3 * k:
        raise AnnotationError("%s: keypoints must be a list of %d numbers (x, y, v for %d "
                              "keypoints), got %s" % (where, 3 * k, k, "%d values" % len(raw)
                                                      if isinstance(raw, list) else
                                                      type(raw).__name__))
    values = np.array([_number(v, "keypoints", where) for v in raw]).reshape(k, 3)
    flags = values[:, 2]
    if not np.all(np.isin(flags, (0.0, 1.0, 2.0))):
        raise AnnotationError("%s: a keypoint's v must be 0, 1 or 2, got %g"
                              % (where, flags[~np.isin(flags, (0.0, 1.0, 2.0))][0]))
    return values[:, :2], flags


def _clean_box(ann, image, where):
    """MMPose's sanitised box ``[x1, y1, w, h]`` (topdown_coco_dataset.py:139-145), or
    None when the annotation has none or it is empty inside the image."""
    box = ann.get("bbox")
    if box is None:
        return None
    if not isinstance(box, list) or len(box) != 4:
        raise AnnotationError("%s: bbox must be [x, y, w, h], got %r" % (where, box))
    x, y, w, h = (_number(v, "bbox", where) for v in box)
    width, height = float(image["width"]), float(image["height"])
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(width - 1, x1 + max(0.0, w)), min(height - 1, y1 + max(0.0, h))
    area = ann.get("area")
    if area is not None:
        area = _number(area, "area", where)
    if (area is None or area > 0) and x2 > x1 and y2 > y1:
        return x1, y1, x2 - x1, y2 - y1
    return None


def box_center_scale(box):
    """Raw (centre, scale) of a record whose hourglass crop is MMPose's box crop of
    ``box`` = 0-based [x1, y1, w, h] (module doc)."""
    x1, y1, w, h = box
    scale = max(w, h) / BOX_PIXELS
    center = np.array([x1 + 0.5 * w + cocotools.PIXEL_OFFSET,
                       y1 + 0.5 * h + cocotools.PIXEL_OFFSET - CENTER_SHIFT_Y * scale])
    return center, scale


def _index(data, path):
    COCOIndex, _COCOeval = cocotools.pycocotools("reading the COCO-format file %s" % path)
    coco = COCOIndex()
    coco.dataset = data
    with cocotools.quiet():
        coco.createIndex()
    return coco


def records_from_coco(data, path):
    """Records and notes of an already-parsed COCO-format document (``path`` names it)."""
    if not is_coco_file(data):
        raise AnnotationError("%s is not a COCO-format file (an object with images, "
                              "annotations and categories)" % (path,))
    data.setdefault("categories", [])
    _check_structure(data, path)
    category_id, keypoints = keypoint_category(data["categories"], path)
    coco = _index(data, path)
    unknown = [a for a in data["annotations"] if a["image_id"] not in coco.imgs]
    if unknown:
        raise AnnotationError("%s: annotation id %d refers to image id %d, which the file "
                              "does not list" % (path, unknown[0]["id"], unknown[0]["image_id"]))
    base, k = source_name(path), keypoints.num_joints
    validation = is_val_file(path)
    skipped = {}
    records, crowd = [], []
    for image in data["images"]:
        for person, ann in enumerate(coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]])), 1):
            where = "%s: annotation id %d" % (path, ann["id"])
            reason = None
            if ann["category_id"] != category_id:
                reason = SKIP_OTHER_CATEGORY
            elif ann.get("iscrowd", 0):
                reason = SKIP_CROWD
                if validation:
                    crowd.append(crowd_region(ann, k, where))
            if reason is None:
                box = _clean_box(ann, image, where)
                if box is None:
                    reason = SKIP_EMPTY_BOX
            if reason is None:
                xy, flags = _keypoints(ann, k, where)
                if not flags.any() or ann.get("num_keypoints", 1) == 0:
                    reason = SKIP_NO_KEYPOINTS
            if reason is not None:
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
            annotated = flags > 0
            center, scale = box_center_scale(box)
            area = ann.get("area")
            records.append(make_record(
                image["file_name"], np.where(annotated[:, None],
                                             xy + cocotools.PIXEL_OFFSET, 0.0),
                annotated, np.where(flags == 2, 1, 0), center=center, scale=scale,
                person_index=person, is_validation=validation,
                source="%s:id %d" % (base, ann["id"]), keypoints=keypoints,
                area=float(area) if area is not None else float("nan"),
                image_id=int(image["id"]), annotation_id=int(ann["id"])))
    return RecordList(records, crowd=crowd), [_note(base, keypoints, len(records),
                                                    validation, skipped, len(crowd))]


def crowd_region(ann, k, where):
    """What OKS AP needs of a crowd annotation (module doc), checked: COCOeval reads its
    bbox (``computeOks`` when it has no labelled keypoints), area, keypoints and
    num_keypoints (``_prepare``)."""
    box = ann.get("bbox")
    if not isinstance(box, list) or len(box) != 4:
        raise AnnotationError("%s: a crowd annotation needs bbox [x, y, w, h], got %r"
                              % (where, box))
    if "area" not in ann:
        raise AnnotationError("%s: a crowd annotation needs an area" % (where,))
    raw = ann.get("keypoints")
    if raw is None:
        raw = [0] * (3 * k)
    else:
        _keypoints(ann, k, where)
    count = ann.get("num_keypoints")
    if count is None:
        count = sum(1 for v in raw[2::3] if v > 0)
    elif not _is_id(count) or count < 0:
        raise AnnotationError("%s: num_keypoints must be a count, got %r" % (where, count))
    return {"id": int(ann["id"]), "image_id": int(ann["image_id"]),
            "category_id": int(ann["category_id"]), "iscrowd": 1,
            "bbox": [_number(v, "bbox", where) for v in box],
            "area": _number(ann["area"], "area", where),
            "keypoints": [_number(v, "keypoints", where) for v in raw],
            "num_keypoints": int(count)}


def _note(base, keypoints, kept, validation, skipped, crowd=0):
    line = "%s: %d %s persons (%s)" % (base, kept, keypoints.name,
                                       "val" if validation else "train")
    if skipped:
        line += "; %d annotations left out: %s" % (sum(skipped.values()), ", ".join(
            "%d %s" % (n, reason) for reason, n in sorted(skipped.items())))
    if crowd:   # no persons, but OKS AP ignores the predictions that fall on them
        line += " (%d kept as crowd regions for OKS AP)" % crowd
    return line


def read_coco_json(path, split=None):
    """The persons of a COCO-format keypoint file (``.json`` or ``.json.gz``) as records
    of its keypoint set; the returned list's ``notes`` say what was left out and why."""
    check_split(split)
    records, notes = records_from_coco(load_json(path), path)
    return RecordList(select_split(records, split), notes,
                      crowd=records.crowd if split != "train" else ())
