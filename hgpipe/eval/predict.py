"""From a loaded model to joints in original image pixels: val shards and plain images.

Both paths crop exactly as ``hgpipe prepare`` does (:mod:`hgpipe.data.transforms`), so a
model sees at prediction time what it saw in training.

How the person box is given (MPII convention, all in 1-based image pixels):

* ``objpos``/``scale`` are *raw* MPII values: ``scale`` is the person's height / 200 px.
  The hourglass crop then moves the centre down by ``15 * scale`` and enlarges the box
  by 1.25, so the crop covers a square of side ``200 * 1.25 * scale`` image pixels
  (:func:`hgpipe.data.transforms.hourglass_box`) -- the crop a network trained on MPII
  expects around a person.
* a person box ``x1 y1 x2 y2`` (:func:`box_from_bbox`): raw scale = longer side / 200, so
  the crop is 1.25 x the longer side, and the raw centre sits ``15 * scale`` above the
  box centre so that the crop is centred on the box.
* the whole image (:func:`box_from_image`): raw scale = longer side / 250, so the crop
  (1.25 x 200 x scale) is exactly the longer side, centred on the image; the shorter side
  is padded with black.
"""
import json
import os
from typing import NamedTuple

import cv2
import numpy as np

from hgpipe import codec, draw
from hgpipe.atomic import atomic_path
from hgpipe.data import plausible, transforms
from hgpipe.eval.inference import predict_image_coords, read_val_inputs
from hgpipe.joints import MPII

FRAME = "image pixels, 1-based (MPII annotations: x = 1 is the centre of the first column)"


class PersonBox(NamedTuple):
    """Where to look for the person: raw MPII objpos and scale, and how they were found."""
    objpos: np.ndarray   # (2,) raw centre, 1-based image pixels
    scale: float         # raw MPII scale (person height / 200 px)
    source: str          # "image", "center" or "bbox"

    def crop(self):
        """The hourglass crop's centre and scale (after the +15*s shift and x1.25)."""
        return transforms.hourglass_box(self.objpos, self.scale)

    def crop_side(self):
        """Side of the square of the image that the crop covers, in image pixels."""
        return transforms.BOX_PIXELS * self.crop()[1]


def box_from_center_scale(center, scale):
    """Raw MPII ``objpos`` (x, y) and ``scale`` as given, checked."""
    center = np.asarray(center, dtype=np.float64).reshape(2)
    scale = float(scale)
    if not np.all(np.isfinite(center)):
        raise ValueError("centre must be two finite numbers, got %s" % (center.tolist(),))
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError("scale must be a positive number, got %r" % scale)
    return PersonBox(center, scale, "center")


def box_from_bbox(x1, y1, x2, y2):
    """A person box (1-based pixels, x1 < x2, y1 < y2) -> raw objpos/scale (see module)."""
    values = np.array([x1, y1, x2, y2], dtype=np.float64)
    if not np.all(np.isfinite(values)) or not (x2 > x1 and y2 > y1):
        raise ValueError("bbox must be x1 y1 x2 y2 with x2 > x1 and y2 > y1, got %s"
                         % (values.tolist(),))
    scale = max(x2 - x1, y2 - y1) / transforms.BOX_PIXELS
    center = np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0 - transforms.CENTER_SHIFT_Y * scale])
    return PersonBox(center, scale, "bbox")


def box_from_image(width, height):
    """The whole image: the crop is the longer side, centred on the image (see module)."""
    scale = max(width, height) / (transforms.BOX_PIXELS * transforms.SCALE_ENLARGE)
    # 1-based pixel centres run 1..W, so the image centre is (W + 1) / 2
    center = np.array([(width + 1) / 2.0,
                       (height + 1) / 2.0 - transforms.CENTER_SHIFT_Y * scale])
    return PersonBox(center, scale, "image")


def check_box(image_path, image_shape, box):
    """Refuse a box that cannot be right for this image (:mod:`hgpipe.data.plausible`)."""
    problem = plausible.box_problem(box.objpos, box.scale, image_shape[1], image_shape[0])
    if problem:
        raise ValueError("%s: %s; nothing written for it" % (image_path, problem))


def crop_person(image_bgr, box, input_size):
    """(RGB uint8 crop of side ``input_size``, its 2x3 crop_to_image affine).

    The same warp as :func:`hgpipe.data.transforms.make_sample` without augmentation.
    """
    center, scale = box.crop()
    to_crop = transforms.image_to_crop_affine(center, scale, input_size)
    crop = transforms.warp_crop(image_bgr, codec.cv2_affine(to_crop), input_size)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), transforms.invert_affine(to_crop)


def _batch_size_of(model):
    return model.batch_size or 1


def keypoints_of_model(model):
    """The keypoint set whose joints ``model`` predicts (a LoadedModel's; MPII for a
    model that carries none)."""
    return getattr(model, "keypoints", None) or MPII


def predict_person(model, image_bgr, box, flip=False):
    """Joints (K, 2) in 1-based image pixels and their confidences (K,) (heatmap peaks),
    K the joints of the model's keypoint set (MPII: 16)."""
    crop, crop_to_image = crop_person(image_bgr, box, model.input_size)
    coords, confidence = predict_image_coords(model.run, crop[None], crop_to_image[None],
                                              _batch_size_of(model), flip,
                                              keypoints_of_model(model))
    return coords[0], confidence[0]


def predict_shards(model, shards_dir, flip=False):
    """Joints of every val-shard person in original image pixels, and confidences.

    The crops are the stored ones, run in the model's batch size (the last batch
    padded); ``crop_to_image`` (stored per sample) maps the decoded heatmap peaks back
    to the original image.
    """
    images, affines = read_val_inputs(shards_dir)
    if images.shape[1] != model.input_size:
        raise ValueError("%s: val crops are %d px but the model takes %d px (the shards "
                         "were prepared for another network input size)"
                         % (shards_dir, images.shape[1], model.input_size))
    return predict_image_coords(model.run, images, affines, _batch_size_of(model), flip,
                                keypoints_of_model(model))


def pose_record(image_path, image_shape, box, coords, confidence, flip, checkpoint,
                keypoints=MPII):
    """The JSON-ready result of one image: the set's K named joints (MPII: 16) with x, y
    and confidence."""
    center, scale = box.crop()
    return {
        "image": image_path,
        "width": int(image_shape[1]),
        "height": int(image_shape[0]),
        "frame": FRAME,
        "person_box": {
            "source": box.source,
            "objpos": [float(v) for v in box.objpos],
            "scale": float(box.scale),
            "crop_center": [float(v) for v in center],
            "crop_side": float(transforms.BOX_PIXELS * scale),
        },
        "flip_test": bool(flip),
        "checkpoint": checkpoint,
        "joints": [{"id": j, "name": name, "x": float(coords[j, 0]), "y": float(coords[j, 1]),
                    "confidence": float(confidence[j])}
                   for j, name in enumerate(keypoints.joint_names)],
    }


def output_paths(out_dir, image_path):
    """(json, png) paths of one image's results: ``OUT/<name>.pose.json`` / ``.pose.png``."""
    stem = os.path.splitext(os.path.basename(image_path))[0]
    return (os.path.join(out_dir, stem + ".pose.json"),
            os.path.join(out_dir, stem + ".pose.png"))


def write_outputs(json_path, png_path, record, image_rgb):
    """Both files or neither: each is complete under a temporary name before either is
    renamed, and the JSON is renamed last, so a failure leaves no ``.pose.json``
    without its ``.png``."""
    ok, png = cv2.imencode(".png", np.ascontiguousarray(image_rgb[..., ::-1]))
    if not ok:
        raise ValueError("%s: could not encode PNG" % png_path)
    text = json.dumps(record, indent=2) + "\n"
    with atomic_path(json_path) as json_tmp, atomic_path(png_path) as png_tmp:
        with open(png_tmp, "wb") as out:
            out.write(png.tobytes())
        with open(json_tmp, "w") as out:
            out.write(text)


def render_pose(image_bgr, coords, mask=None, keypoints=MPII):
    """The original image (RGB) with the predicted skeleton (``keypoints``' limbs), line
    width scaled to its size; ``mask`` (K bools) leaves out joints (and their limbs),
    e.g. those below a score."""
    image_rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    size = max(image_rgb.shape[:2])
    thickness = max(2, int(round(size / 300.0)))
    # draw_skeleton takes 0-based pixels; predictions are 1-based
    return draw.draw_skeleton(image_rgb, np.asarray(coords) - 1.0, mask=mask,
                              radius=thickness + 1, thickness=thickness, keypoints=keypoints)
