"""What every annotation reader shares: its error type, the validation-split bookkeeping
and the ``split=`` filter, so that all formats give identical records for one person."""
import os

import numpy as np

from hgpipe.data import split as val_split
from hgpipe.data.schema import SPLITS

# a reader's ``split=`` argument: every record (None), or one of the shard splits
SPLIT_FILTERS = (None,) + SPLITS


class AnnotationError(ValueError):
    """An annotation file is missing, of an unknown format, or malformed (names the file)."""


def source_name(path):
    """The short file name used in records' ``source`` ("file:where")."""
    return os.path.basename(str(path))


def check_split(split):
    if split not in SPLIT_FILTERS:
        raise ValueError("split must be one of None, 'train', 'val'; got %r" % (split,))


def select_split(records, split):
    """Keep all records (None), the training ones ('train') or the validation ones ('val')."""
    check_split(split)
    if split is None:
        return list(records)
    want = split == "val"
    return [r for r in records if bool(r.is_validation) == want]


def mark_by_key(record, path):
    """Set is_validation (and a missing head box) from the split, by official indices.

    A key that the split knows under another image name means the file numbers its
    persons differently from the official annolist: every later lookup would be wrong,
    so that is an error rather than a guess.
    """
    person = val_split.val_person(record.annolist_index, record.person_index)
    if person is None:
        return record._replace(is_validation=False)
    if person.image_name != record.image_name:
        raise AnnotationError(
            "%s: %s has annolist/annorect index (%d, %d), which the validation split "
            "knows as image %s: the file does not use the official MPII indices"
            % (path, record.describe(), record.annolist_index, record.person_index,
               person.image_name))
    head_box = record.head_box if record.head_box is not None else person.head_box.copy()
    return record._replace(is_validation=True, head_box=head_box)


def mark_by_match(records, use_center=True):
    """Set is_validation, indices and head box for records without official indices.

    A record that matches no validation person is a training record, unless its image
    is a validation image: the split never mixes an image, so such a record is most
    likely a validation person whose annotation differs a little, and training on it
    would leak validation data. It is left out (in neither split).
    """
    matches = val_split.match_val_people(
        [(r.image_name, r.center if use_center else None, r.joints, r.annotated)
         for r in records])
    marked = []
    for record, person in zip(records, matches):
        if person is None:
            if not val_split.is_val_image(record.image_name):
                marked.append(record._replace(is_validation=False))
            continue
        head_box = record.head_box if record.head_box is not None else person.head_box.copy()
        marked.append(record._replace(is_validation=True, head_box=head_box,
                                      annolist_index=person.annolist_index,
                                      person_index=person.person_index))
    return marked


def as_float(value, what, where):
    """float(value) with an AnnotationError that says which field of which entry failed."""
    if isinstance(value, float):
        return value  # the common case, kept cheap: readers call this ~10^5 times
    if value is None:
        raise AnnotationError("%s: %s is missing" % (where, what))
    try:
        result = float(np.asarray(value, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise AnnotationError("%s: %s is not a number (%r)" % (where, what, value))
    return result
