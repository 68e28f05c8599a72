"""``hgpipe prepare``: MPII annotations + images -> versioned HDF5 training shards."""
import os
import signal
import sys

import click
from tqdm import tqdm

from hgpipe.cli.options import config_options, echo_err, user_errors
from hgpipe.data import prepare as prep
from hgpipe.data.workers import WorkerDied


@click.command("prepare", short_help="Crop, augment and render heatmaps into HDF5 shards.")
@click.option("--mpii", "mpii_dir", required=True, type=click.Path(file_okay=False),
              help="Dataset folder holding images/ and an annotation file.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Shards directory to write (created; reruns resume).")
@click.option("--annotations", type=click.Path(dir_okay=False), multiple=True,
              help="Annotation file (default: found in --mpii): official .mat, the JSON "
                   "conversion (.json/.json.gz), the seed's dataset.txt or mmpose JSON; "
                   "LSP's joints.mat; a COCO-format keypoint file (the one named val "
                   "holds the val persons). Repeatable (e.g. mmpose's train and val "
                   "files): a person in two files is kept from the first.")
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

    \b
    Examples:
      hgpipe prepare --mpii data/demo --out runs/demo/shards --config configs/tiny.cfg
      hgpipe prepare --mpii mpii --out shards --annotations mpii/annot/train.json \\
          --annotations mpii/annot/valid.json
      hgpipe prepare --mpii data/demo_coco --out shards_coco \\
          --annotations data/demo_coco/annotations/person_keypoints_train.json \\
          --annotations data/demo_coco/annotations/person_keypoints_val.json
    """
    stop = _StopOnSigterm()
    try:
        with stop, user_errors():
            try:
                prep.prepare_dataset(cfg, mpii_dir, out_dir, list(annotations),
                                     workers or os.cpu_count() or 1, overwrite,
                                     echo=click.echo, progress=_progress_bar)
            except WorkerDied:
                if stop.received:  # the SIGTERM went to the workers too (a process group)
                    raise KeyboardInterrupt
                raise
    except KeyboardInterrupt:  # workers ignore Ctrl-C and end with this process
        echo_err("prepare interrupted%s: the complete shards in %s are kept; rerun the "
                 "same command to resume" % (" (SIGTERM)" if stop.received else "", out_dir))
        sys.exit(130)


class _StopOnSigterm(object):
    """While prepare runs, SIGTERM (kill, a job scheduler, a container stop) does what
    Ctrl-C does: the run stops where it is, half-written shards are removed, the
    complete ones kept, one line, exit 130 (like train). Without it Python dies at once
    with 143, silently, leaving temporary shard files for the next run to remove. A
    second SIGTERM while stopping is ignored, so the clean-up finishes."""

    received = False

    def _handle(self, signum, frame):
        self.received = True
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    def __enter__(self):
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self._previous)
        return False


def _progress_bar(total):
    return tqdm(total=total, unit="sample", desc="prepare", dynamic_ncols=True, disable=None)
