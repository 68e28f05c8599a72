"""``hgpipe prepare``: MPII annotations + images -> versioned HDF5 training shards."""
import os

import click
from tqdm import tqdm

from hgpipe.cli.options import config_options, user_errors
from hgpipe.data import prepare as prep
from hgpipe.data.images import ImageLocator
from hgpipe.data.readers import find_annotation_file, read_annotations, validate_records


@click.command("prepare")
@click.option("--mpii", "mpii_dir", required=True, type=click.Path(file_okay=False),
              help="Dataset folder holding images/ and an annotation file.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Shards directory to write (created; reruns resume).")
@click.option("--annotations", type=click.Path(dir_okay=False),
              help="Annotation file (default: found in --mpii): official .mat, the JSON "
                   "conversion (.json/.json.gz), the seed's dataset.txt or mmpose JSON.")
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="Worker processes [default: all cores].")
@click.option("--overwrite", is_flag=True,
              help="Replace shards in --out that were made from other data or config.")
@config_options
def prepare_command(cfg, mpii_dir, out_dir, annotations, workers, overwrite):
    """Crop, augment and render heatmaps once, into HDF5 shards + manifest.json.

    Each image is decoded once for all its persons and augmented variants; training
    persons get [Prepare] variants crops each, validation persons (the standard Tompson
    split) one plain crop. Same inputs and seed give identical shards whatever
    --workers; an interrupted run resumes where it stopped.
    """
    with user_errors():
        _prepare(cfg, mpii_dir, out_dir, annotations, workers or os.cpu_count() or 1,
                 overwrite)


def _prepare(cfg, mpii_dir, out_dir, annotations, workers, overwrite):
    if not os.path.isdir(mpii_dir):
        raise ValueError("%s: dataset folder not found" % mpii_dir)
    annotation_file = annotations or find_annotation_file(mpii_dir)
    records = read_annotations(annotation_file)
    good, invalid = validate_records(records)
    skipped = [(r.describe(), "invalid annotation: %s" % why) for r, why in invalid]
    n_val = sum(1 for r in good if r.is_validation)
    click.echo("read %d persons from %s: %d train, %d val, %d invalid" % (
        len(records), annotation_file, len(good) - n_val, n_val, len(invalid)))

    images_dir = os.path.join(mpii_dir, "images")
    if not os.path.isdir(images_dir):
        raise ValueError("%s: no images/ folder" % mpii_dir)
    tasks, missing = prep.plan_shards(good, cfg, ImageLocator(images_dir))
    skipped += [(r.describe(), why) for r, why in missing]
    if missing:
        click.echo("%d persons skipped: their image is not in %s" % (len(missing), images_dir))
    if not tasks:
        raise prep.PrepareError("%s: no usable person (all %d skipped); see the reasons above"
                                % (annotation_file, len(skipped)))

    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    settings = prep.shard_settings(cfg)
    entries, todo = [], []
    for task in tasks:
        try:
            entry = prep.existing_entry(task, out_dir)
        except prep.PrepareError:
            if not overwrite:
                raise
            os.remove(os.path.join(out_dir, task.file_name))
            entry = None
        if entry is None:
            todo.append(task)
        else:
            entries.append(entry)
    if entries:
        click.echo("resuming: %d of %d shards already complete" % (len(entries), len(tasks)))
    total = sum(t.samples for t in todo)
    with tqdm(total=total, unit="sample", desc="prepare", dynamic_ncols=True,
              disable=None) as bar:
        entries += prep.run_tasks(todo, settings, out_dir, min(workers, max(1, len(todo))),
                                  on_progress=bar.update)
    for entry in entries:
        skipped += [tuple(s) for s in entry["skipped"]]
    unreadable = [s for s in skipped if "decodable" in s[1] or "cannot read" in s[1]
                  or "empty file" in s[1]]
    for who, why in unreadable[:20]:
        click.echo("skipped %s: %s" % (who, why), err=True)
    if len(unreadable) > 20:
        click.echo("... and %d more unreadable (see skipped.json)" % (len(unreadable) - 20),
                   err=True)
    manifest = prep.write_manifest(out_dir, cfg, entries, skipped, annotation_file,
                                   {"mpii": os.path.abspath(mpii_dir)})
    counts = manifest["counts"]
    click.echo("wrote %d train + %d val samples in %d shards to %s" % (
        counts["train"], counts["val"], len(manifest["shards"]), out_dir))
    if skipped:
        click.echo("skipped %d persons (details in %s):" % (
            len(skipped), os.path.join(out_dir, "skipped.json")))
        for reason, n in sorted(manifest["skipped_by_reason"].items(), key=lambda x: -x[1]):
            click.echo("  %7d  %s" % (n, reason))
    if counts["train"] + counts["val"] == 0:
        raise prep.PrepareError("%s: no usable samples were written" % out_dir)
