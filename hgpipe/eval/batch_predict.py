"""Many persons through one loaded model: in-memory images, files, folders and videos.

The crops of many (image, person box) pairs are stacked and run through the model in
batches of its batch size (:func:`hgpipe.eval.inference.run_batched`), so a folder of
thousands of images or a long video costs one model load and full batches, not one
process per image. Crops, boxes and the mapping back to image pixels are those of
:mod:`hgpipe.eval.predict` (the crop prepare makes).

Colour order is never guessed: every in-memory image comes with ``color="rgb"`` or
``"bgr"``. The network was trained on RGB crops cut from BGR-decoded files; an RGB
frame taken for BGR swaps red and blue and gives other joints.
"""
import json
from typing import NamedTuple

import cv2
import numpy as np

from hgpipe.eval import predict
from hgpipe.eval.inference import predict_image_coords
from hgpipe.joints import MPII

COLOR_ORDERS = ("rgb", "bgr")


class Pose(NamedTuple):
    """One person's prediction: ``joints`` (K, 2) x, y in 1-based image pixels in the
    order of ``keypoints`` (the model's :class:`hgpipe.joints.KeypointSet`; MPII's 16,
    :data:`hgpipe.joints.JOINT_NAMES`), ``scores`` (K,) heatmap peaks, the ``box``
    (:class:`hgpipe.eval.predict.PersonBox`) the crop was cut around."""
    joints: np.ndarray
    scores: np.ndarray
    box: object
    width: int
    height: int
    keypoints: object = MPII

    def to_dict(self):
        """The JSON form (one line of ``predictions.jsonl`` without its file fields); a
        set other than MPII adds its name and skeleton (limbs as pairs of joint ids)."""
        center, scale = self.box.crop()
        record = {
            "width": int(self.width), "height": int(self.height),
            "coordinates": predict.FRAME,
            "box": {"source": self.box.source,
                    "objpos": [float(v) for v in self.box.objpos],
                    "scale": float(self.box.scale),
                    "crop_center": [float(v) for v in center],
                    "crop_side": float(self.box.crop_side())},
            "joints": [{"id": j, "name": name, "x": float(self.joints[j, 0]),
                        "y": float(self.joints[j, 1]), "score": float(self.scores[j])}
                       for j, name in enumerate(self.keypoints.joint_names)],
        }
        if self.keypoints != MPII:
            record["keypoints"] = self.keypoints.name
            record["skeleton"] = [[int(a), int(b)] for a, b in self.keypoints.skeleton]
        return record


def check_color(color):
    """'rgb' | 'bgr' (any case); anything else, including None, is refused."""
    text = str(color).lower() if color is not None else ""
    if text not in COLOR_ORDERS:
        raise ValueError("color must be 'rgb' or 'bgr' (the channel order of the array: "
                         "PIL, imageio and matplotlib give RGB, cv2.imread BGR), got %r"
                         % (color,))
    return text


def as_bgr(image, color):
    """A uint8 (H, W, 3) BGR array from an (H, W) grey, (H, W, 1) or (H, W, 3) uint8 array
    in the given channel order."""
    color = check_color(color)
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError("image must be uint8 (0-255), got %s; convert it first, e.g. "
                         "(image * 255).round().astype(np.uint8)" % image.dtype)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("image must be (H, W, 3), (H, W, 1) or (H, W), got %s; drop an "
                         "alpha channel first" % (image.shape,))
    if color == "rgb":
        return np.ascontiguousarray(image[..., ::-1])
    return np.ascontiguousarray(image)


def person_box(image_shape, box=None, where="image"):
    """``None`` (the whole image), a PersonBox, or (x1, y1, x2, y2) in 1-based pixels;
    checked against the image (:func:`hgpipe.eval.predict.check_box`)."""
    if box is None:
        box = predict.box_from_image(image_shape[1], image_shape[0])
    elif not isinstance(box, predict.PersonBox):
        box = predict.box_from_bbox(*[float(v) for v in box])
    predict.check_box(where, image_shape, box)
    return box


def predict_crops(model, items, batch_size, flip=False):
    """Poses of ``items``, a list of (BGR image, PersonBox), batched through ``model``."""
    if not items:
        return []
    keypoints = predict.keypoints_of_model(model)
    crops, affines = zip(*(predict.crop_person(image, box, model.input_size)
                           for image, box in items))
    coords, scores = predict_image_coords(model.run, np.stack(crops), np.stack(affines),
                                          batch_size, flip, keypoints)
    return [Pose(coords[i], scores[i], box, image.shape[1], image.shape[0], keypoints)
            for i, (image, box) in enumerate(items)]


def draw_poses(image_bgr, poses, min_score):
    """The image (BGR) with each pose's joints whose score is at least ``min_score``, and
    the limbs between two such joints."""
    canvas = image_bgr
    for pose in poses:
        rgb = predict.render_pose(canvas, pose.joints, pose.scores >= min_score,
                                  pose.keypoints)
        canvas = np.ascontiguousarray(rgb[..., ::-1])
    return canvas


# Training crops are cut as prepare cuts them: a square of 1.25 x 200·s around a person
# whose MPII scale s is its height / 200 (hgpipe/data/transforms.py), so a training
# person spans up to 1 / 1.25 = 80% of the crop side. A pose whose confident joints span
# under a quarter of the side is a person about three times smaller than any the model
# saw (or a box holding a crowd, a scene): its joints are not to be trusted as one
# person's. The criterion is deliberately crude and stated in the note.
SMALL_PERSON_FRACTION = 0.25


def person_fraction(pose, min_score):
    """The larger of the width and height spanned by the joints scoring at least
    ``min_score``, over the crop side; None with fewer than two such joints."""
    confident = pose.joints[np.asarray(pose.scores) >= min_score]
    if len(confident) < 2:
        return None
    span = float(np.max(confident.max(axis=0) - confident.min(axis=0)))
    return span / float(pose.box.crop_side())


def scale_note(fraction):
    """The note for a pose much smaller than its box, else None."""
    if fraction is None:
        return "no two joints reach --min-score: no person the model knows in this box"
    if fraction < SMALL_PERSON_FRACTION:
        return ("the joints span %.0f%% of the box side; training persons span up to 80%%: "
                "the box holds more than the model saw (give --bbox or --detections)"
                % (100 * fraction))
    return None


def jsonl_line(record):
    return json.dumps(record, sort_keys=False) + "\n"
