"""A small, deterministic, generated dataset in COCO keypoint format (COCO's 17 joints).

Why it exists: the second keypoint set's walk-through (``hgpipe prepare --annotations``
a COCO-format train and val file, training, OKS AP) and its tests must run without the
COCO download. The figures are :mod:`hgpipe.data.demo`'s (same drawing, same random
streams, smaller images); their annotations are written the way COCO's
``person_keypoints_*.json`` are:

* ``keypoints`` are 0-based image pixels (COCO's convention; hgpipe's readers add 1),
  ``[x, y, v]`` with ``v`` 2 visible, 1 labelled but hidden, 0 not labelled (then
  ``x = y = 0``), and ``num_keypoints`` counts ``v > 0``;
* the body joints are the MPII demo's (its labels: outside the image or dropped -> 0,
  covered -> 1); the face points are where the drawing puts them on the head: eyes at
  the painted eyes, ears at the face outline's sides, the nose below the eyes; they are
  labelled only on figures seen from the front (v 2 where the pixel is the figure's own
  head, else 1);
* ``bbox`` ``[x, y, w, h]`` and ``area`` are those of the figure's own pixels in the
  drawing's part map, what a segmentation mask of the visible person would give (COCO's
  boxes and areas are its masks'); no ``segmentation`` is written (keypoint training and
  OKS need none);
* every eighth image also has a crowd annotation (``iscrowd`` 1, no keypoints), over
  the box of all its figures, as COCO marks groups: readers must leave it out.

Determinism: the images are ``demo.render_scene`` (see there); the numbers are rounded
to 2 decimals and written by ``json.dumps`` (shortest float repr, the same on every
Python 3), one image or annotation per line, no dates.

Regenerate the committed copy with ``python -m hgpipe.data.demo_coco data/demo_coco``.
"""
import argparse
import json
import os
import re
import sys

import numpy as np

from hgpipe.atomic import ensure_dir
from hgpipe.data import demo
from hgpipe.joints import (COCO, COCO_SKELETON_1BASED, HEAD_TOP, L_ANKLE, L_ELBOW, L_HIP,
                           L_KNEE, L_SHOULDER, L_WRIST, R_ANKLE, R_ELBOW, R_HIP, R_KNEE,
                           R_SHOULDER, R_WRIST, UPPER_NECK)

DEFAULT_TRAIN_IMAGES = 60
DEFAULT_VAL_IMAGES = 20
DEFAULT_SEED = 1            # not the MPII demo's 0: other figures
IMAGE_SIZE = ((176, 132), (240, 180))
CROWD_EVERY = 8
VAL_IMAGE_ID_BASE = 1000    # image ids: train 1.., val 1001.. (unique across both files)

TRAIN_FILE = os.path.join("annotations", "person_keypoints_train.json")
VAL_FILE = os.path.join("annotations", "person_keypoints_val.json")
IMAGE_DIR = "images"
CHECKSUM_FILE = "SHA256SUMS"
_IMAGE_NAME = "coco_demo_%06d.jpg"
_IMAGE_NAME_RE = re.compile(r"^coco_demo_\d+\.jpg$")

CATEGORY = {"supercategory": "person", "id": 1, "name": "person",
            "keypoints": list(COCO.joint_names),
            "skeleton": [list(limb) for limb in COCO_SKELETON_1BASED]}

# COCO joint -> the MPII demo joint it is (the 12 body joints)
BODY = {"left_shoulder": L_SHOULDER, "right_shoulder": R_SHOULDER,
        "left_elbow": L_ELBOW, "right_elbow": R_ELBOW, "left_wrist": L_WRIST,
        "right_wrist": R_WRIST, "left_hip": L_HIP, "right_hip": R_HIP,
        "left_knee": L_KNEE, "right_knee": R_KNEE, "left_ankle": L_ANKLE,
        "right_ankle": R_ANKLE}
# face points in the head frame of demo._body_anchors: (along neck -> head top, sideways
# to the person's right), in head segments from the neck; eyes as painted (0.5 + 0.04,
# 0.15), ears at the face ellipse's minor axis (0.39), the nose below the eyes
FACE = {"nose": (0.42, 0.0), "left_eye": (0.54, -0.15), "right_eye": (0.54, 0.15),
        "left_ear": (0.54, -0.39), "right_ear": (0.54, 0.39)}


def face_points(joints):
    """Image positions (0-based) of the five face points of a demo figure's MPII joints."""
    neck, top = joints[UPPER_NECK], joints[HEAD_TOP]
    d = (top[0] - neck[0], top[1] - neck[1])
    side = (-d[1], d[0])
    # the person's right: the side of the right shoulder (mirrored figures included)
    across = (joints[R_SHOULDER][0] - joints[L_SHOULDER][0],
              joints[R_SHOULDER][1] - joints[L_SHOULDER][1])
    if side[0] * across[0] + side[1] * across[1] < 0:
        side = (-side[0], -side[1])
    return {name: (neck[0] + a * d[0] + s * side[0], neck[1] + a * d[1] + s * side[1])
            for name, (a, s) in FACE.items()}


def _own_pixels(part_map, slot):
    value = part_map.astype(np.int32)
    return (value != 0) & (value != demo.OCCLUDER) & (value // demo.PARTS_PER_PERSON == slot)


def _round(value):
    text = "%.2f" % value
    return 0.0 if text == "-0.00" else float(text)


def person_keypoints(person, part_map):
    """The 17 ``[x, y, v]`` triples (flat list) of one drawn figure, COCO's order."""
    height, width = part_map.shape
    face = face_points(person.joints)
    flat = []
    for name in COCO.joint_names:
        if name in BODY:
            j = BODY[name]
            x, y = person.joints[j]
            v = (2 if person.visible[j] else 1) if person.annotated[j] else 0
        else:
            x, y = face[name]
            v = 0
            if not person.back_view and 0 <= x <= width - 1 and 0 <= y <= height - 1:
                value = int(part_map[int(round(y)), int(round(x))])
                own = value != demo.OCCLUDER and value // demo.PARTS_PER_PERSON == person.slot
                v = 2 if own and value % demo.PARTS_PER_PERSON == demo.HEAD else 1
        flat += [_round(x), _round(y), v] if v else [0, 0, 0]
    return flat


def _box(mask):
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return [0.0, 0.0, 0.0, 0.0]
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    return [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)]


def scene_annotations(scene, image_id, crowd):
    """The annotation objects of one image (its figures, then a crowd one if asked)."""
    anns = []
    for k, person in enumerate(scene.persons):
        mask = _own_pixels(scene.part_map, person.slot)
        keypoints = person_keypoints(person, scene.part_map)
        anns.append({"id": image_id * 10 + k + 1, "image_id": image_id, "category_id": 1,
                     "iscrowd": 0, "area": float(mask.sum()), "bbox": _box(mask),
                     "num_keypoints": sum(1 for v in keypoints[2::3] if v > 0),
                     "keypoints": keypoints})
    if crowd:
        mask = np.zeros(scene.part_map.shape, dtype=bool)
        for person in scene.persons:
            mask |= _own_pixels(scene.part_map, person.slot)
        box = _box(mask)
        anns.append({"id": image_id * 10 + 9, "image_id": image_id, "category_id": 1,
                     "iscrowd": 1, "area": float(box[2] * box[3]), "bbox": box,
                     "num_keypoints": 0, "keypoints": [0] * (3 * COCO.num_joints)})
    return anns


def _document(images, annotations, split):
    lines = ['{"info": %s,' % json.dumps({"description": "hgpipe demo_coco, generated "
                                                        "(hgpipe.data.demo_coco), %s" % split,
                                         "version": "1.0"}, sort_keys=True),
             '"categories": [%s],' % json.dumps(CATEGORY, sort_keys=True),
             '"images": [', ",\n".join(json.dumps(i, sort_keys=True) for i in images), "],",
             '"annotations": [', ",\n".join(json.dumps(a, sort_keys=True) for a in annotations),
             "]}"]
    return ("\n".join(lines) + "\n").encode("ascii")


def generate_demo_coco(out_dir, n_train_images=DEFAULT_TRAIN_IMAGES,
                       n_val_images=DEFAULT_VAL_IMAGES, seed=DEFAULT_SEED):
    """Write the COCO-format demo dataset under ``out_dir``; returns a summary dict.

    Layout: ``images/coco_demo_NNNNNN.jpg`` (NNNNNN = image id), ``annotations/
    person_keypoints_train.json`` and ``person_keypoints_val.json``, ``SHA256SUMS``.
    Same arguments -> byte-identical files; stale ``coco_demo_*.jpg`` files are removed.
    """
    n_train_images, n_val_images = int(n_train_images), int(n_val_images)
    if n_train_images < 1 or n_val_images < 1:
        raise ValueError("demo_coco needs at least one train and one val image, got %d "
                         "and %d" % (n_train_images, n_val_images))
    image_dir = os.path.join(out_dir, IMAGE_DIR)
    for sub in (image_dir, os.path.join(out_dir, "annotations")):
        ensure_dir(sub)
    splits = {"train": ([], []), "val": ([], [])}
    written = set()
    for index in range(n_train_images + n_val_images):
        split = "train" if index < n_train_images else "val"
        image_id = index + 1 if split == "train" else \
            VAL_IMAGE_ID_BASE + index - n_train_images + 1
        scene = demo.render_scene(seed, index, IMAGE_SIZE)
        name = _IMAGE_NAME % image_id
        demo._write_bytes(os.path.join(image_dir, name), demo.encode_jpeg(scene.image))
        written.add(name)
        height, width = scene.image.shape[:2]
        images, anns = splits[split]
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        anns += scene_annotations(scene, image_id, crowd=index % CROWD_EVERY == CROWD_EVERY - 1)
    for stale in os.listdir(image_dir):
        if _IMAGE_NAME_RE.match(stale) and stale not in written:
            os.remove(os.path.join(image_dir, stale))
    for split, path in (("train", TRAIN_FILE), ("val", VAL_FILE)):
        demo._write_bytes(os.path.join(out_dir, path), _document(*splits[split], split=split))
    files = [TRAIN_FILE, VAL_FILE] + [os.path.join(IMAGE_DIR, n) for n in sorted(written)]
    sums = ["%s  %s" % (demo._sha256(os.path.join(out_dir, f)), f.replace(os.sep, "/"))
            for f in files]
    demo._write_bytes(os.path.join(out_dir, CHECKSUM_FILE),
                      ("\n".join(sums) + "\n").encode("ascii"))
    counts = {split: sum(1 for a in anns if not a["iscrowd"])
              for split, (_images, anns) in splits.items()}
    return {"out_dir": out_dir, "images": len(written), "train_persons": counts["train"],
            "val_persons": counts["val"], "seed": seed}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m hgpipe.data.demo_coco",
        description="Generate the deterministic demo dataset in COCO keypoint format.")
    parser.add_argument("out_dir")
    parser.add_argument("--train-images", type=int, default=DEFAULT_TRAIN_IMAGES)
    parser.add_argument("--val-images", type=int, default=DEFAULT_VAL_IMAGES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    try:
        summary = generate_demo_coco(args.out_dir, args.train_images, args.val_images,
                                     args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    print("wrote %(images)d images, %(train_persons)d train + %(val_persons)d val persons "
          "to %(out_dir)s (seed %(seed)d)" % summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
