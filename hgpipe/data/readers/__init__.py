"""Annotation readers: every supported annotation format -> a list of PersonRecord.

All MPII readers give identical records for the same person (MPII 1-based pixels, raw
objpos and scale, Tompson validation split marked from :mod:`hgpipe.data.split`), so
nothing downstream knows which format a user had. Other keypoint sets: LSP's
``joints.mat`` (:mod:`.lsp_mat`) and COCO-format keypoint files (:mod:`.coco_json`), whose
records carry their set. :func:`read_annotations` picks the reader from the file's
content; :func:`find_annotation_file` finds a known file inside a dataset folder.
"""
import os

from hgpipe.data.readers.coco_json import is_coco_file, read_coco_json, records_from_coco
from hgpipe.data.readers.common import AnnotationError, RecordList, check_split, select_split
from hgpipe.data.readers.dataset_txt import read_dataset_txt, write_dataset_txt
from hgpipe.data.readers.hrnet_json import read_hrnet_json, records_from_items
from hgpipe.data.readers.lsp_mat import read_lsp_mat
from hgpipe.data.readers.mat_release import (SCIPY_MAT_ERRORS, check_mat_file,
                                             parse_annorect, read_release_mat,
                                             read_val_detections_mat, unreadable_mat,
                                             v73_error)
from hgpipe.data.readers.mpii_json import load_json, read_mpii_json, records_from_entries
from hgpipe.data.readers.validate import validate_records

__all__ = [
    "AnnotationError", "find_annotation_file", "parse_annorect", "read_annotations",
    "read_coco_json", "read_dataset_txt", "read_hrnet_json", "read_lsp_mat",
    "read_mpii_json", "read_release_mat",
    "read_val_detections_mat", "validate_records", "write_dataset_txt",
]

# Looked for in this order by find_annotation_file: the official file first (it alone
# has head boxes for every person and unknown visibility), then the JSON conversion.
KNOWN_ANNOTATION_FILES = (
    "mpii_human_pose_v1_u12_1.mat",
    os.path.join("mpii_human_pose_v1_u12_2", "mpii_human_pose_v1_u12_1.mat"),
    os.path.join("annotations", "mpii_human_pose_v1_u12_1.mat"),
    "mpii_annotations.json",
    "mpii_annotations.json.gz",
    os.path.join("annotations", "mpii_annotations.json"),
    os.path.join("annotations", "mpii_annotations.json.gz"),
    os.path.join("annot", "mpii_annotations.json"),
    os.path.join("annot", "mpii_annotations.json.gz"),
    "dataset.txt",
    os.path.join("annotations", "dataset.txt"),
    "joints.mat",   # LSP and LSP extended
)


def find_annotation_file(mpii_dir):
    """Path of the first known annotation file inside ``mpii_dir``, or a clear error."""
    if not os.path.isdir(mpii_dir):
        raise AnnotationError("dataset folder %s does not exist" % (mpii_dir,))
    for name in KNOWN_ANNOTATION_FILES:
        path = os.path.join(mpii_dir, name)
        if os.path.isfile(path):
            return path
    raise AnnotationError(
        "no annotation file found in %s; looked for: %s. Pass another file explicitly "
        "(e.g. an mmpose/HRNet train.json or valid.json)"
        % (mpii_dir, ", ".join(KNOWN_ANNOTATION_FILES)))


def _read_mat(path):
    import scipy.io
    check_mat_file(path)
    try:
        names = [entry[0] for entry in scipy.io.whosmat(path)]
    except NotImplementedError:
        raise v73_error(path)
    except SCIPY_MAT_ERRORS as exc:
        raise unreadable_mat(path, exc)
    if "RELEASE" in names:
        return read_release_mat(path)
    if "annolist" in names and "RELEASE_img_index" in names:
        return read_val_detections_mat(path)
    if "joints" in names:
        return read_lsp_mat(path)
    shown = ", ".join(_shown(n) for n in names[:8]) or "no variables"
    raise AnnotationError("%s holds %s: neither the official RELEASE struct, a val "
                          "detections.mat nor LSP's joints" % (path, shown))


def _shown(name):
    """A variable name as printed in a message: a damaged file's names can hold any byte."""
    return name if name.isidentifier() and len(name) <= 40 else repr(name[:40])


def _read_json(path):
    items = load_json(path)
    if is_coco_file(items):
        records, notes = records_from_coco(items, path)
        return RecordList(records, notes, records.crowd)
    first = items[0] if isinstance(items, list) and items else None
    if isinstance(first, dict) and "joint_self" in first:
        return records_from_entries(items, path)
    if isinstance(first, dict) and "image" in first and "center" in first:
        return records_from_items(items, path)
    raise AnnotationError("%s is not a known JSON annotation format (expected a list of "
                          "objects with joint_self, or with image/center/joints, or a COCO-"
                          "format object with images and annotations)" % (path,))


def read_annotations(path, split=None):
    """Read any supported annotation file; ``split`` None (all), 'train' or 'val'.

    Formats: official ``.mat`` (RELEASE) or val ``detections.mat``, LSP's ``joints.mat``;
    the MPII JSON conversion, an mmpose/HRNet list or a COCO-format keypoint file
    (``.json`` / ``.json.gz``); ``dataset.txt``. The list's ``notes`` (a
    :class:`RecordList`) are lines about what a reader left out, for a command to print.
    """
    check_split(split)
    path = os.fspath(path)
    if os.path.isdir(path):
        raise AnnotationError("%s is a folder; give an annotation file (or use "
                              "find_annotation_file)" % (path,))
    if not os.path.isfile(path):
        raise AnnotationError("annotation file %s does not exist" % (path,))
    lower = path.lower()
    if lower.endswith(".mat"):
        records = _read_mat(path)
    elif lower.endswith(".json") or lower.endswith(".json.gz"):
        records = _read_json(path)
    elif lower.endswith(".txt"):
        records = read_dataset_txt(path)
    else:
        raise AnnotationError("%s: unknown annotation format (expected .mat, .json, "
                              ".json.gz or .txt)" % (path,))
    return RecordList(select_split(records, split), getattr(records, "notes", ()),
                      getattr(records, "crowd", ()) if split != "train" else ())


def person_key(record):
    """What makes two records the same person: the official ids when the file has them,
    else the image and the raw objpos and scale (rounded to 1e-3 px)."""
    if record.annolist_index > 0 and record.person_index > 0:
        return ("ids", record.annolist_index, record.person_index)
    return ("box", record.image_name, round(float(record.center[0]), 3),
            round(float(record.center[1]), 3), round(float(record.scale), 6))


def read_annotation_files(paths, notes=None, crowd=None):
    """Records of several annotation files (MMPose's separate train and val JSONs, say),
    in the order given. The rule for a person found in more than one file (same key, see
    :func:`person_key`): the first file's record is kept, the later ones are dropped and
    counted. Returns ``(records, duplicates)``; ``duplicates`` maps each later file to
    how many of its persons were dropped. ``notes``: a list the files' notes (what their
    readers left out, :func:`read_annotations`) are appended to; ``crowd``: one their
    crowd regions are appended to (COCO-format val files; a region id seen is kept once)."""
    records, seen, duplicates = [], set(), {}
    for path in paths:
        dropped = 0
        found = read_annotations(path)
        if notes is not None:
            notes.extend(found.notes)
        if crowd is not None:
            known = set(region["id"] for region in crowd)
            crowd.extend(region for region in found.crowd if region["id"] not in known)
        for record in found:
            key = person_key(record)
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
            records.append(record)
        if dropped:
            duplicates[path] = dropped
    return records, duplicates
