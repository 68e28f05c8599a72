"""``hgpipe prepare``: MPII annotations + images -> versioned HDF5 training shards."""
import os
import sys

import click
from tqdm import tqdm

from hgpipe.cli.options import config_options, echo_err, user_errors
from hgpipe.data import prepare as prep


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
    try:
        with user_errors():
            prep.prepare_dataset(cfg, mpii_dir, out_dir, annotations,
                                 workers or os.cpu_count() or 1, overwrite, echo=click.echo,
                                 progress=_progress_bar)
    except KeyboardInterrupt:  # workers ignore Ctrl-C and end with this process
        echo_err("prepare interrupted: the complete shards in %s are kept; rerun the same "
                 "command to resume" % out_dir)
        sys.exit(130)


def _progress_bar(total):
    return tqdm(total=total, unit="sample", desc="prepare", dynamic_ncols=True, disable=None)
