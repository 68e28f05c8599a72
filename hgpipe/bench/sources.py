"""Which images the bench works on, and how a handful of them becomes a training workload.

The real MPII images beside the project are few (7 annotated persons in 6 images) but
they are what a peer's loader really decodes: 1280x720 JPEGs. The generated demo set has
hundreds of persons in small images (cheaper to decode, so kinder to the online loader).
The bench prefers the real images and, to give ``prepare`` thousands of samples, makes
numbered symlinks of them: each copy is a different image name to prepare, so every
copy is decoded again exactly as a distinct MPII image would be, with the same persons
per image.
"""
import os
from typing import List, NamedTuple

from hgpipe.atomic import ensure_dir
from hgpipe.bench.report import BenchError
from hgpipe.data.images import ImageError, ImageLocator
from hgpipe.data.readers import find_annotation_file, read_annotations, validate_records

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Looked for in this order when --mpii is not given: the real images kept beside the
# checkout for tests, then the generated demo dataset inside it.
DEFAULT_DATASETS = (os.path.join(os.path.dirname(_REPO_ROOT), "shared", "mpii"),
                    os.path.join(_REPO_ROOT, "data", "demo"))


class DataSource(NamedTuple):
    dataset_dir: str
    annotation_file: str
    people: List[object]       # PersonRecords whose image is present, in file order
    paths: dict                # image_name -> image path
    annotated_persons: int     # persons in the annotation file
    train_persons: int         # training persons in the annotation file

    @property
    def images_dir(self):
        return os.path.join(self.dataset_dir, "images")

    @property
    def images(self):
        return len(self.paths)

    def describe(self):
        return "%s: %d persons with images in %d images (of %d annotated)" % (
            self.dataset_dir, len(self.people), self.images, self.annotated_persons)


def find_dataset(mpii_dir=None):
    """The dataset folder to use: ``mpii_dir`` if given, else the first default present."""
    if mpii_dir is not None:
        if not os.path.isdir(mpii_dir):
            raise BenchError("%s: dataset folder not found" % mpii_dir)
        return mpii_dir
    for candidate in DEFAULT_DATASETS:
        if os.path.isdir(os.path.join(candidate, "images")):
            return os.path.relpath(candidate)
    raise BenchError("no dataset found (looked for ../shared/mpii and data/demo beside the "
                     "checkout); pass --mpii DIR holding images/ and an annotation file")


def load_source(dataset_dir):
    """Read the annotations and keep the valid persons whose image file exists."""
    annotation_file = find_annotation_file(dataset_dir)
    records = read_annotations(annotation_file)
    good, _invalid = validate_records(records)
    images_dir = os.path.join(dataset_dir, "images")
    if not os.path.isdir(images_dir):
        raise BenchError("%s: no images/ folder" % dataset_dir)
    locator = ImageLocator(images_dir)
    people, paths = [], {}
    for record in good:
        try:
            path = paths.get(record.image_name) or locator.find(record.image_name)
        except ImageError:  # a name leading outside the folder: not part of the source
            path = None
        if path is not None:
            paths[record.image_name] = path
            people.append(record)
    if not people:
        raise BenchError("%s: none of the %d annotated persons has its image in %s" % (
            annotation_file, len(records), images_dir))
    return DataSource(dataset_dir, annotation_file, people, paths, len(records),
                      sum(1 for r in good if not r.is_validation))


def training_people(source, persons, images_dir):
    """At least ``persons`` training records over symlinked copies of the source images.

    Copy k of image X is ``images_dir/kNNN_X``; the records point at it and are marked as
    training persons so that ``prepare`` makes all their variants. Images are taken
    whole (all their persons), so the persons-per-image ratio is the source's.
    """
    ensure_dir(images_dir)
    by_image = {}
    for record in source.people:
        by_image.setdefault(record.image_name, []).append(record)
    out, copy = [], 0
    while len(out) < persons:
        for name, records in by_image.items():
            alias = "k%03d_%s" % (copy, os.path.basename(name))
            link = os.path.join(images_dir, alias)
            if not os.path.lexists(link):
                target = os.path.abspath(source.paths[name])
                try:
                    os.symlink(target, link)
                except (OSError, NotImplementedError, AttributeError):
                    import shutil
                    shutil.copyfile(target, link)
            out.extend(r._replace(image_name=alias, is_validation=False) for r in records)
            if len(out) >= persons:
                break
        copy += 1
    return out
