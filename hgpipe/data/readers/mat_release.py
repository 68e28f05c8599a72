"""Reader of the official MATLAB annotations (``mpii_human_pose_v1_u12_1.mat``).

Layout: ``RELEASE.annolist(i).image.name``, ``RELEASE.annolist(i).annorect(r)`` with the
head box ``x1 y1 x2 y2``, ``annopoints.point(k)`` = ``id x y is_visible``, ``scale`` and
``objpos.x/.y``; ``RELEASE.img_train(i)`` is 0 for test images. Loaded with
``scipy.io.loadmat(struct_as_record=False, squeeze_me=True)``, which turns a struct array
of length 1 into a lone struct and an empty field into an empty array -- the quirks
:func:`parse_annorect` absorbs: points in any id order, 5-16 points per person,
``is_visible`` as an int, a string '0'/'1' or empty (unknown), and rects that are not
annotated persons (no points, no scale or objpos), which are skipped.

``detections.mat`` (the Tompson val ground truth in official per-person layout, with
``RELEASE_img_index``/``RELEASE_person_index``) goes through the same per-rect parser in
:func:`read_val_detections_mat`.
"""
import numpy as np

from hgpipe.data.readers.common import (AnnotationError, as_float, check_file_size,
                                        check_split, mark_by_key, select_split, source_name)
from hgpipe.data.readers.mat_size import unpacked_size_problem
from hgpipe.data.records import make_record
from hgpipe.data import split as val_split
from hgpipe.joints import NUM_JOINTS


def v73_error(path):
    return AnnotationError("%s is a MATLAB v7.3 (HDF5) file; re-save it in MATLAB with "
                           "save(..., '-v7') so it can be read" % (path,))


# What scipy.io raises on a damaged .mat file: ValueError mostly, but its parser, fed
# mutated bytes, also raised zlib.error, MatReadError (not a ValueError), IndexError,
# UnboundLocalError and MemoryError (tests/test_fuzz_readers.py). Any of them means the
# same to a user -- the file cannot be read -- so every Exception from scipy is one line.
SCIPY_MAT_ERRORS = (Exception,)


def unreadable_mat(path, exc):
    """The one-line AnnotationError for a .mat file scipy could not parse."""
    text = str(exc).strip()
    return AnnotationError("%s is not a readable MATLAB .mat file (%s)" % (
        path, text.splitlines()[0][:200] if text else type(exc).__name__))


def check_mat_file(path):
    """Refuse, before scipy reads it, a .mat file too large on disk or whose compressed
    variables inflate past the bound (:mod:`hgpipe.data.readers.mat_size`)."""
    check_file_size(path)
    try:
        problem = unpacked_size_problem(path)
    except (IOError, OSError) as exc:
        raise AnnotationError("%s cannot be read (%s)" % (path, exc.strerror or exc))
    if problem:
        raise AnnotationError("%s: %s" % (path, problem))


def load_mat(path, variable_names=None):
    """scipy.io.loadmat with structs as attribute objects and errors that name the file."""
    import scipy.io
    check_mat_file(path)
    try:
        return scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True,
                                variable_names=variable_names)
    except NotImplementedError:
        raise v73_error(path)
    except SCIPY_MAT_ERRORS as exc:
        raise unreadable_mat(path, exc)


def _is_empty(value):
    return value is None or (isinstance(value, np.ndarray) and value.size == 0) or (
        isinstance(value, str) and not value.strip())


def as_struct_list(value):
    """A MATLAB struct array as a list: a lone (squeezed) struct, an array, or empty."""
    if _is_empty(value):
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel(order="F"))  # MATLAB's own linear order
    return [value]


def _field(struct, name):
    """A struct field, or None when the struct lacks it or it is empty."""
    value = getattr(struct, name, None)
    return None if _is_empty(value) else value


def _visibility(value, where):
    """MPII's is_visible -> 1 / 0, or -1 when the annotators left it empty."""
    if _is_empty(value):
        return -1
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size == 1 else value
    if isinstance(value, (str, np.str_, bytes)):
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
        text = text.strip()
        if text in ("0", "1"):
            return int(text)
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if number in (0.0, 1.0):
            return int(number)
    raise AnnotationError("%s: is_visible must be 0, 1 or empty, got %r" % (where, value))


def parse_annorect(rect, image_name, annolist_index, person_index, source):
    """One official ``annorect`` struct -> PersonRecord, or None if not an annotated person.

    ``source`` names the rect in messages (e.g. ``file.mat:annolist(7).annorect(1)``).
    ``is_validation`` is left False: callers mark it from the split.
    """
    annopoints = _field(rect, "annopoints")
    points = as_struct_list(_field(annopoints, "point")) if annopoints is not None else []
    scale = _field(rect, "scale")
    objpos = _field(rect, "objpos")
    if not points or scale is None or objpos is None:
        return None
    if _field(objpos, "x") is None or _field(objpos, "y") is None:
        return None

    joints = np.zeros((NUM_JOINTS, 2))
    annotated = np.zeros(NUM_JOINTS, dtype=bool)
    visible = np.zeros(NUM_JOINTS, dtype=np.int8)
    for k, point in enumerate(points, 1):
        where = "%s.annopoints.point(%d)" % (source, k)
        joint_id = as_float(_field(point, "id"), "id", where)
        if not joint_id.is_integer() or not 0 <= joint_id < NUM_JOINTS:
            raise AnnotationError("%s: joint id must be an integer 0-%d, got %r"
                                  % (where, NUM_JOINTS - 1, joint_id))
        joint_id = int(joint_id)
        if annotated[joint_id]:
            raise AnnotationError("%s: joint id %d appears twice" % (where, joint_id))
        joints[joint_id] = (as_float(_field(point, "x"), "x", where),
                            as_float(_field(point, "y"), "y", where))
        annotated[joint_id] = True
        visible[joint_id] = _visibility(getattr(point, "is_visible", None), where)

    box = [_field(rect, name) for name in ("x1", "y1", "x2", "y2")]
    head_box = None
    if all(v is not None for v in box):
        head_box = [as_float(v, "head box", source) for v in box]
    return make_record(
        image_name, joints, annotated, visible,
        center=(as_float(objpos.x, "objpos.x", source), as_float(objpos.y, "objpos.y", source)),
        scale=as_float(scale, "scale", source), head_box=head_box,
        annolist_index=int(annolist_index), person_index=int(person_index), source=source)


def _image_name(entry, where):
    image = _field(entry, "image")
    name = _field(image, "name") if image is not None else None
    if isinstance(name, np.ndarray):
        name = name.ravel()[0] if name.size == 1 else None
    if not isinstance(name, (str, np.str_)):
        raise AnnotationError("%s: image.name is missing" % (where,))
    return str(name)


def read_release_mat(path, split=None):
    """Annotated persons of the official ``RELEASE`` .mat (training images only).

    Test images (``img_train == 0``) carry no joints and are skipped, as are rects that are
    not annotated persons. ``split``: None (all), 'train' or 'val' (Tompson split).
    """
    check_split(split)
    release = load_mat(path, ["RELEASE"]).get("RELEASE")
    if release is None or _field(release, "annolist") is None:
        raise AnnotationError("%s has no RELEASE.annolist: not the official MPII "
                              "annotation file" % (path,))
    annolist = as_struct_list(release.annolist)
    img_train = _field(release, "img_train")
    if img_train is not None:
        img_train = np.atleast_1d(img_train).ravel(order="F")
        if len(img_train) != len(annolist):
            raise AnnotationError("%s: RELEASE.img_train has %d entries for %d images"
                                  % (path, len(img_train), len(annolist)))
    base = source_name(path)
    records = []
    for i, entry in enumerate(annolist, 1):
        if img_train is not None and not img_train[i - 1]:
            continue
        where = "%s:annolist(%d)" % (base, i)
        rects = as_struct_list(_field(entry, "annorect"))
        if not rects:
            continue
        name = _image_name(entry, where)
        for r, rect in enumerate(rects, 1):
            record = parse_annorect(rect, name, i, r, "%s.annorect(%d)" % (where, r))
            if record is not None:
                records.append(mark_by_key(record, path))
    return select_split(records, split)


def read_val_detections_mat(path, split=None):
    """The 2,958 Tompson val persons of ``detections.mat`` (official per-person layout).

    The file has no image names: they come from the validation split by
    (``RELEASE_img_index``, ``RELEASE_person_index``).
    """
    check_split(split)
    mat = load_mat(path)
    missing = [k for k in ("annolist", "RELEASE_img_index", "RELEASE_person_index")
               if k not in mat]
    if missing:
        raise AnnotationError("%s lacks %s: not a val detections.mat" % (path, ", ".join(missing)))
    annolist = as_struct_list(mat["annolist"])
    image_index = np.atleast_1d(mat["RELEASE_img_index"]).ravel()
    person_index = np.atleast_1d(mat["RELEASE_person_index"]).ravel()
    if not len(annolist) == len(image_index) == len(person_index):
        raise AnnotationError("%s: %d annolist entries but %d/%d RELEASE indices" % (
            path, len(annolist), len(image_index), len(person_index)))
    base = source_name(path)
    records = []
    for k, entry in enumerate(annolist, 1):
        where = "%s:annolist(%d)" % (base, k)
        a, p = int(image_index[k - 1]), int(person_index[k - 1])
        person = val_split.val_person(a, p)
        if person is None:
            raise AnnotationError("%s: person (%d, %d) is not in the validation split"
                                  % (where, a, p))
        rects = as_struct_list(_field(entry, "annorect"))
        if len(rects) != 1:
            raise AnnotationError("%s: expected one annorect, found %d" % (where, len(rects)))
        record = parse_annorect(rects[0], person.image_name, a, p, where + ".annorect")
        if record is not None:
            records.append(mark_by_key(record, path))
    return select_split(records, split)
