"""Readers for prediction files and validation ground truth, and hgpipe's predictions writer.

Every reader returns MPII joint order and 1-based image pixels, so that scoring never has
to know where a number came from.  Predictions become a float64 ``(N, 16, 2)`` array;
ground truth becomes a :class:`GroundTruth`.

Prediction files understood (the format is found from the file's content, not its name):

* MATLAB v5 ``.mat`` with ``preds`` ``(N, 16, 2)`` (bearpaw, eval-mpii-pose), or with
  ``pos_pred_src`` ``(16, 2, N)`` (``detections_our_format.mat``: Tompson CVPR'15);
* HDF5 with a dataset ``preds`` ``(N, 16, 2)`` (Newell's ``valid-ours.h5``, hgpipe's own);
* MATLAB/Octave HDF5 (v7.3) files, which store arrays column-major so that HDF5 sees the
  axes reversed: a dataset ``preds`` ``(2, 16, N)`` carrying a ``MATLAB_class`` attribute,
  or Octave's group ``preds`` holding ``type`` and ``value`` ``(2, 16, N)``.
* any of these with ``(N, 16, 3)`` (x, y, score: PyraNet's released file, mmpose's
  output): the first two columns are scored, and the report says so in one line.

Ground-truth files understood:

* ``detections_our_format.mat``: ``pos_gt_src``, ``jnt_missing``, ``headboxes_src``.  Used
  as the published evaluation code uses it: a joint is annotated iff ``jnt_missing`` is 0.
  Upstream quirk: 13 annotated joints have a coordinate stored as 0 (the official
  annotation has a real value there); the published tables count them with that 0, so we
  do too -- they are (almost always) misses.
* Newell's ``valid.h5``: ``part`` was truncated to integers when the file was made, so
  scores against it differ slightly (a few hundredths) from the published tables; the
  13 quirky joints above have their true values here.  A joint is annotated iff ``part``
  is not (0, 0) -- this matches ``jnt_missing`` exactly.
* a directory of hgpipe val shards (``val-*.h5``, read in sorted order), or one shard.

Those are MPII's 16 joints, scored by PCKh. Val shards of another keypoint set (their
manifest's ``keypoints``, :func:`hgpipe.data.schema.keypoints_of`) are read by
:func:`read_keypoint_ground_truth` into a :class:`KeypointGroundTruth` (K joints, and
COCO's areas and ids for OKS sets); their predictions files hold (N, K, 2), the
heatmap peaks (N, K) as ``scores`` and the set's JSON as the ``keypoints`` attribute
(:func:`write_predictions` with ``keypoints``).
"""
import glob
import os
from typing import NamedTuple, Optional, Tuple

import h5py
import numpy as np

from hgpipe.atomic import atomic_path
from hgpipe.data import schema, shard_checks
from hgpipe.data.readers.mat_size import unpacked_size_problem
from hgpipe.joints import MPII, NUM_JOINTS, KeypointSet

PREDICTIONS_FORMAT = "hgpipe-predictions"
PREDICTIONS_VERSION = 1


class EvalFileError(ValueError):
    """A prediction or ground-truth file cannot be used; the message names the file."""


class GroundTruth(NamedTuple):
    joints: np.ndarray          # (N, 16, 2) float64, 1-based image pixels
    annotated: np.ndarray       # (N, 16) bool: the joint has ground truth and is scored
    normalizer: np.ndarray      # (N,) float64: 0.6 x head-box diagonal
    source: str = ""            # file or directory it was read from
    annolist_index: Optional[np.ndarray] = None  # (N,) 1-based official ids, if known
    person_index: Optional[np.ndarray] = None    # (N,) 1-based annorect ids, if known
    notes: Tuple[str, ...] = ()  # caveats worth printing next to the scores

    @property
    def num_persons(self):
        return int(self.joints.shape[0])


class Predictions(NamedTuple):
    coords: np.ndarray          # (N, 16, 2) float64, 1-based image pixels
    source: str = ""
    annolist_index: Optional[np.ndarray] = None
    person_index: Optional[np.ndarray] = None
    notes: Tuple[str, ...] = ()  # how the file was read, worth printing with the scores


class KeypointGroundTruth(NamedTuple):
    """The val persons of a keypoint set's shards (any set; its metric scores them)."""
    keypoints: object           # hgpipe.joints.KeypointSet
    joints: np.ndarray          # (N, K, 2) float64, 1-based image pixels
    annotated: np.ndarray       # (N, K) bool
    source: str = ""
    area: Optional[np.ndarray] = None           # (N,) oks sets: COCO areas
    image_id: Optional[np.ndarray] = None       # (N,) oks sets: COCO image ids
    annotation_id: Optional[np.ndarray] = None  # (N,) oks sets: COCO annotation ids
    annolist_index: Optional[np.ndarray] = None
    person_index: Optional[np.ndarray] = None
    crowd: tuple = ()           # oks sets: the val images' crowd regions (COCO dicts)

    @property
    def num_persons(self):
        return int(self.joints.shape[0])

    def first(self, n):
        """The first ``n`` persons (train's val_persons)."""
        return self._replace(**{name: getattr(self, name)[:n] for name in (
            "joints", "annotated", "area", "image_id", "annotation_id", "annolist_index",
            "person_index") if getattr(self, name) is not None})


# --------------------------------------------------------------------------- predictions

def load_predictions(path):
    """Read any supported predictions file into a :class:`Predictions`."""
    _require_file(path)
    if h5py.is_hdf5(path):
        return _load_h5_predictions(path)
    return _load_mat_predictions(path)


def write_predictions(path, preds, annolist_index=None, person_index=None, attrs=None,
                      keypoints=MPII, scores=None):
    """Write hgpipe's predictions file atomically (temp file in the same folder + rename).

    ``preds`` is ``(N, K, 2)`` in 1-based image pixels, K the joints of ``keypoints``
    (MPII's 16); the ids are the 1-based official annolist/annorect indices of each
    person (-1 where unknown) so that a later reader can check that predictions and
    ground truth list the same persons in the same order. A set other than MPII is
    recorded in the ``keypoints`` attribute, with the heatmap peaks ``scores`` (N, K)
    when given (OKS AP ranks persons by them); an MPII file is as it always was.
    """
    preds = np.asarray(preds, dtype=np.float64)
    _check_shape(preds, path, keypoints.num_joints)
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != preds.shape[:2]:
            raise EvalFileError("%s: scores %s do not fit predictions %s"
                                % (path, scores.shape, preds.shape))
    n = preds.shape[0]
    ids = {}
    for name, values in (("annolist_index", annolist_index), ("person_index", person_index)):
        values = np.full(n, -1) if values is None else np.asarray(values).reshape(-1)
        if values.shape[0] != n:
            raise EvalFileError("%s: %s has %d entries for %d predictions"
                                % (path, name, values.shape[0], n))
        ids[name] = values.astype(np.int32)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("preds", data=preds)
            for name, values in ids.items():
                f.create_dataset(name, data=values)
            if keypoints != MPII:
                if scores is not None:
                    f.create_dataset("scores", data=scores)
                f.attrs["keypoints"] = keypoints.to_json()
            f.attrs["format"] = PREDICTIONS_FORMAT
            f.attrs["version"] = PREDICTIONS_VERSION
            f.attrs["frame"] = "image pixels, 1-based (MPII annotation coordinates)"
            for key, value in (attrs or {}).items():
                f.attrs[key] = value


def load_keypoint_predictions(path, keypoints):
    """hgpipe's predictions file of a set other than MPII (:func:`write_predictions`):
    (coords (N, K, 2), scores (N, K) or None if the file has none)."""
    _require_file(path)
    if not h5py.is_hdf5(path):
        raise EvalFileError("%s: predictions of the %s set are read from hgpipe's "
                            "predictions .h5 (written by pck --checkpoint)"
                            % (path, keypoints.name))
    with _open_h5(path) as f:
        if "preds" not in f or not isinstance(f["preds"], h5py.Dataset):
            raise EvalFileError("%s: no 'preds' dataset (found: %s)" % (path, _keys(f)))
        recorded = f.attrs.get("keypoints")
        coords = np.asarray(f["preds"][()])
        scores = np.asarray(f["scores"][()], dtype=np.float64) if "scores" in f else None
    if recorded is not None:
        if isinstance(recorded, bytes):
            recorded = recorded.decode("utf-8", "replace")
        try:
            theirs = KeypointSet.from_json(str(recorded))
        except ValueError as exc:
            raise EvalFileError("%s: its 'keypoints' attribute: %s" % (path, exc))
        if theirs != keypoints:
            raise EvalFileError("%s: predictions of the %s set, the ground truth holds %s"
                                % (path, theirs.name, keypoints.name))
    if coords.dtype.kind not in "biuf":
        raise EvalFileError("%s: 'preds' holds %s values, expected numbers" % (path, coords.dtype))
    coords = coords.astype(np.float64)
    _check_shape(coords, path, keypoints.num_joints)
    if scores is not None and scores.shape != coords.shape[:2]:
        raise EvalFileError("%s: scores %s do not fit predictions %s"
                            % (path, scores.shape, coords.shape))
    return coords, scores


def _load_h5_predictions(path):
    with _open_h5(path) as f:
        if "preds" not in f:
            raise EvalFileError("%s: no 'preds' dataset (found: %s)" % (path, _keys(f)))
        node = f["preds"]
        if isinstance(node, h5py.Group):  # Octave: group with 'type' and 'value'
            if "value" not in node:
                raise EvalFileError("%s: group 'preds' has no 'value' dataset" % path)
            coords = _from_column_major(node["value"][()], path)
        elif "MATLAB_class" in node.attrs:  # MATLAB v7.3
            coords = _from_column_major(node[()], path)
        else:
            coords = node[()]
            # (2, 16, N): column-major (N, 16, 2) written without a MATLAB mark; (3, 16,
            # N) likewise with scores, unless N is 2 or 3 (then it is row-major already)
            if coords.ndim == 3 and coords.shape[1] == NUM_JOINTS and (
                    (coords.shape[0] == 2 and coords.shape[2] != 2) or
                    (coords.shape[0] == 3 and coords.shape[2] not in (2, 3))):
                coords = _from_column_major(coords, path)
        ids = [_optional_ids(f, name) for name in ("annolist_index", "person_index")]
    coords, notes = _as_coords(coords, path)
    return Predictions(coords, path, ids[0], ids[1], notes)


def _load_mat_predictions(path):
    mat = _load_mat(path)
    if "preds" in mat:
        coords = np.asarray(mat["preds"])
    elif "pos_pred_src" in mat:  # detections_our_format.mat: (16, 2, N)
        coords = np.asarray(mat["pos_pred_src"])
        if coords.ndim == 3:
            coords = coords.transpose(2, 0, 1)
    else:
        raise EvalFileError("%s: no 'preds' variable (found: %s)" % (path, _keys(mat)))
    coords, notes = _as_coords(coords, path)
    return Predictions(coords, path, notes=notes)


def _as_coords(array, path):
    """float64 (N, 16, 2) and notes; (N, 16, 3) (x, y, score: PyraNet, mmpose) keeps x, y."""
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise EvalFileError("%s: 'preds' holds %s values, expected numbers (N, 16, 2)"
                            % (path, "text" if array.dtype.kind in "SUO" else array.dtype))
    coords = array.astype(np.float64)
    notes = ()
    if coords.ndim == 3 and coords.shape[1:] == (NUM_JOINTS, 3):
        coords = coords[:, :, :2]
        notes = ("%s: 'preds' is (N, 16, 3): scored on the first two columns (x, y), the "
                 "third (a score) is ignored" % path,)
    _check_shape(coords, path)
    return coords, notes


def _from_column_major(array, path):
    """MATLAB/Octave HDF5 stores (N, 16, 2) column-major: HDF5 sees (2, 16, N)."""
    array = np.asarray(array)
    if array.ndim != 3:
        raise EvalFileError("%s: 'preds' must have 3 axes, got shape %s"
                            % (path, array.shape))
    return array.transpose(2, 1, 0)


def _optional_ids(f, name):
    if name not in f:
        return None
    values = np.asarray(f[name][()]).reshape(-1).astype(np.int64)
    return None if np.all(values < 0) else values


# --------------------------------------------------------------------------- ground truth

def read_ground_truth(path):
    """Read any supported ground truth (file or shards directory) into a GroundTruth."""
    if os.path.isdir(path):
        return _read_shards_gt(path)
    _require_file(path)
    if h5py.is_hdf5(path):
        with _open_h5(path) as f:
            is_shard = "gt_joints" in f
        return _read_shard_files(path, [path]) if is_shard else _read_valid_h5(path)
    return _read_detections_mat(path)


def read_keypoint_ground_truth(shards_dir):
    """The val persons of a shards directory of any keypoint set, in manifest order:
    a :class:`KeypointGroundTruth` (with area and COCO ids for an ``oks`` set)."""
    from hgpipe.data import shards
    try:
        manifest = shards.load_manifest(shards_dir)
        keypoints = schema.keypoints_of(manifest)
        paths = shards.shard_paths(shards_dir, "val", manifest)
        crowd = shards.load_crowd(shards_dir, manifest) if keypoints.metric == "oks" \
            else []
    except (shard_checks.ShardError, ValueError) as exc:
        raise EvalFileError(str(exc))
    if not paths:
        raise EvalFileError("%s: shards directory without val-*.h5 shards" % shards_dir)
    spec = schema.datasets(4, 1, "val", keypoints=keypoints)
    wanted = ["gt_joints", "gt_annotated", "annolist_index", "person_index"]
    if keypoints.metric == "oks":
        wanted += ["area", "image_id", "annotation_id"]
    parts = {key: [] for key in wanted}
    for name in paths:
        with _open_h5(name) as f, shard_checks.reading(name, EvalFileError):
            missing = [key for key in wanted if key not in f]
            if missing:
                raise EvalFileError("%s: val shard of the %s set has no '%s' dataset"
                                    % (name, keypoints.name, missing[0]))
            try:
                shard_checks.check_datasets(name, f, {key: spec[key] for key in wanted},
                                            exact_dtype=False)
            except shard_checks.ShardError as error:
                raise EvalFileError(str(error))
            for key in wanted:
                parts[key].append(f[key][()])
    arrays = {key: np.concatenate(values) for key, values in parts.items()}
    ids = [arrays[key].astype(np.int64) for key in ("annolist_index", "person_index")]
    extra = {}
    if keypoints.metric == "oks":
        extra = dict(area=arrays["area"].astype(np.float64),
                     image_id=arrays["image_id"].astype(np.int64),
                     annotation_id=arrays["annotation_id"].astype(np.int64),
                     crowd=tuple(crowd))
    return KeypointGroundTruth(
        keypoints, arrays["gt_joints"].astype(np.float64),
        arrays["gt_annotated"].astype(bool), shards_dir,
        annolist_index=None if np.all(ids[0] < 1) else ids[0],
        person_index=None if np.all(ids[1] < 1) else ids[1], **extra)


def _read_detections_mat(path):
    mat = _load_mat(path)
    needed = ("pos_gt_src", "jnt_missing", "headboxes_src")
    missing = [k for k in needed if k not in mat]
    if missing:
        raise EvalFileError("%s: not a ground-truth file: no %s (found: %s)"
                            % (path, ", ".join(repr(k) for k in missing), _keys(mat)))
    joints = np.asarray(mat["pos_gt_src"], dtype=np.float64)
    missing_flags = np.asarray(mat["jnt_missing"])
    boxes = np.asarray(mat["headboxes_src"], dtype=np.float64)
    if joints.ndim != 3 or joints.shape[:2] != (NUM_JOINTS, 2):
        raise EvalFileError("%s: pos_gt_src must be (16, 2, N), got %s" % (path, joints.shape))
    n = joints.shape[2]
    if missing_flags.shape != (NUM_JOINTS, n) or boxes.shape != (2, 2, n):
        raise EvalFileError("%s: jnt_missing %s / headboxes_src %s do not fit %d persons"
                            % (path, missing_flags.shape, boxes.shape, n))
    normalizer = 0.6 * np.linalg.norm(boxes[1] - boxes[0], axis=0)
    zero = int(np.sum((joints.transpose(2, 0, 1) == 0).any(-1) & (missing_flags.T == 0)))
    notes = ()
    if zero:
        notes = ("%d annotated joints have a coordinate stored as 0 in this file (upstream "
                 "quirk); they are scored as the published code scores them" % zero,)
    return _make_gt(path, joints.transpose(2, 0, 1), missing_flags.T == 0, normalizer,
                    notes=notes)


def _read_valid_h5(path):
    with _open_h5(path) as f:
        needed = ("part", "normalize")
        missing = [k for k in needed if k not in f]
        if missing:
            hint = " (a predictions file?)" if "preds" in f else ""
            raise EvalFileError("%s: not a ground-truth file: no %s%s (found: %s)"
                                % (path, ", ".join(repr(k) for k in missing), hint, _keys(f)))
        joints = np.asarray(f["part"][()], dtype=np.float64)
        normalizer = np.asarray(f["normalize"][()], dtype=np.float64).reshape(-1)
        index = f["index"][()].astype(np.int64) + 1 if "index" in f else None
        person = f["person"][()].astype(np.int64) + 1 if "person" in f else None
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 2):
        raise EvalFileError("%s: part must be (N, 16, 2), got %s" % (path, joints.shape))
    note = ("part coordinates in this file are truncated to integers: scores differ "
            "slightly from tables computed on detections_our_format.mat")
    return _make_gt(path, joints, (joints != 0).any(-1), normalizer, index, person, (note,))


def _read_shards_gt(path):
    files = sorted(glob.glob(os.path.join(path, "val-*.h5")))
    if not files:
        if os.path.exists(os.path.join(path, "manifest.json")):
            raise EvalFileError("%s: shards directory without val-*.h5 shards" % path)
        raise EvalFileError("%s: not a shards directory (no manifest.json, no val-*.h5)"
                            % path)
    return _read_shard_files(path, files)


def _read_shard_files(path, files):
    parts = {k: [] for k in ("gt_joints", "gt_annotated", "head_normalizer",
                             "annolist_index", "person_index")}
    # any sizes: the ground-truth fields do not depend on them
    spec = schema.datasets(4, 1, "val")
    for name in files:
        with _open_h5(name) as f, shard_checks.reading(name, EvalFileError):
            for key in ("gt_joints", "gt_annotated", "head_normalizer"):
                if key not in f:
                    raise EvalFileError("%s: val shard has no '%s' dataset" % (name, key))
            present = [key for key in parts if key in f]
            try:   # kind, dtype, shape and size checked before anything is read
                shard_checks.check_datasets(name, f, {key: spec[key] for key in present},
                                            exact_dtype=False)
            except shard_checks.ShardError as error:
                raise EvalFileError(str(error))
            for key in parts:
                parts[key].append(f[key][()] if key in f else None)
    ids = []
    for key in ("annolist_index", "person_index"):
        ids.append(None if any(v is None for v in parts[key])
                   else np.concatenate(parts[key]).astype(np.int64))
    joints = np.concatenate(parts["gt_joints"]).astype(np.float64)
    annotated = np.concatenate(parts["gt_annotated"]).astype(bool)
    normalizer = np.concatenate(parts["head_normalizer"]).astype(np.float64).reshape(-1)
    return _make_gt(path, joints, annotated, normalizer, ids[0], ids[1])


def _make_gt(path, joints, annotated, normalizer, annolist_index=None, person_index=None,
             notes=()):
    n = joints.shape[0]
    if joints.shape != (n, NUM_JOINTS, 2) or annotated.shape != (n, NUM_JOINTS) \
            or normalizer.shape != (n,):
        raise EvalFileError("%s: inconsistent shapes joints %s, annotated %s, normalizer %s"
                            % (path, joints.shape, annotated.shape, normalizer.shape))
    notes = list(notes)
    bad = ~(np.isfinite(normalizer) & (normalizer > 0))
    if bad.all() and n:
        raise EvalFileError("%s: none of its %d persons has a usable head size (NaN, zero "
                            "or negative head box)" % (path, n))
    if bad.any():
        # one bad head box used to refuse the whole split (and turn train's validation
        # off): its person is left out of every score instead, the rest stay exact
        notes.append("%d persons have no usable head size (NaN, zero or negative head box; "
                     "first: row %d): not scored" % (int(bad.sum()), int(np.flatnonzero(bad)[0])))
        annotated = annotated & ~bad[:, None]
        normalizer = np.where(bad, np.nan, normalizer)
    if annolist_index is not None and np.all(annolist_index < 1):
        annolist_index = None
    if person_index is not None and np.all(person_index < 1):
        person_index = None
    repeated = _repeated_persons(annolist_index, person_index)
    if repeated:
        notes.append("%d rows repeat a person listed before them (same annolist and person "
                     "index; first: row %d): each copy is scored" % repeated)
    return GroundTruth(joints, annotated, normalizer, path, annolist_index, person_index,
                       tuple(notes))


def _repeated_persons(annolist_index, person_index):
    """(how many rows repeat an earlier row's official person ids, the first such row),
    or None when there are none or the ids are unknown."""
    if annolist_index is None or person_index is None:
        return None
    known = (annolist_index > 0) & (person_index > 0)
    ids = np.stack([annolist_index, person_index], axis=1)
    _, first = np.unique(ids, axis=0, return_index=True)
    repeat = np.ones(len(ids), bool)
    repeat[first] = False
    repeat &= known
    if not repeat.any():
        return None
    return int(repeat.sum()), int(np.flatnonzero(repeat)[0])


# --------------------------------------------------------------------------- checks

def check_compatible(preds, gt, preds_source="predictions"):
    """Raise EvalFileError unless predictions and ground truth list the same persons.

    ``preds`` is an array or a :class:`Predictions`; when both sides know the official
    ids of their persons, the order is checked too, not just the count.
    """
    coords = preds.coords if isinstance(preds, Predictions) else np.asarray(preds)
    if isinstance(preds, Predictions) and preds.source:
        preds_source = preds.source
    _check_shape(coords, preds_source)
    if coords.shape[0] != gt.num_persons:
        raise EvalFileError("%s: %d predictions but %s has %d persons"
                            % (preds_source, coords.shape[0], gt.source or "ground truth",
                               gt.num_persons))
    if not isinstance(preds, Predictions):
        return
    for name in ("annolist_index", "person_index"):
        mine, theirs = getattr(preds, name), getattr(gt, name)
        if mine is None or theirs is None:
            continue
        known = (mine > 0) & (theirs > 0)
        wrong = np.flatnonzero(known & (mine != theirs))
        if wrong.size:
            i = int(wrong[0])
            raise EvalFileError("%s: row %d is %s %d but %s has %d there: different persons "
                                "or order" % (preds_source, i, name, mine[i],
                                              gt.source or "ground truth", theirs[i]))


def _check_shape(coords, path, num_joints=NUM_JOINTS):
    if coords.ndim != 3 or coords.shape[1:] != (num_joints, 2):
        raise EvalFileError("%s: predictions must have shape (N, %d, 2), got %s"
                            % (path, num_joints, tuple(coords.shape)))


def _require_file(path):
    if not os.path.exists(path):
        raise EvalFileError("%s: no such file" % path)
    if os.path.isdir(path):
        raise EvalFileError("%s: is a directory, expected a file" % path)


def _open_h5(path):
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise EvalFileError("%s: cannot open as HDF5 (%s)" % (path, error))


def _load_mat(path):
    import scipy.io  # only the .mat readers need scipy
    problem = unpacked_size_problem(path)
    if problem:
        raise EvalFileError("%s: %s" % (path, problem))
    try:
        return scipy.io.loadmat(path)
    except Exception as error:  # scipy raises several unrelated types for bad files
        raise EvalFileError("%s: neither HDF5 nor a readable MATLAB .mat file (%s)"
                            % (path, str(error).splitlines()[0] if str(error) else
                               type(error).__name__))


def _keys(container):
    names = sorted(k for k in container.keys() if not k.startswith("__"))
    return ", ".join(names) if names else "nothing"
