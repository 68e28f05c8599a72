"""``hgpipe inspect``: counts, schema and a PNG montage of a shards directory."""
import click

from hgpipe.cli.options import user_errors
from hgpipe.data import inspect as shard_inspect
from hgpipe.data import shards


@click.command("inspect", short_help="Show what prepare wrote; --verify checks every shard.")
@click.argument("shards_dir", type=click.Path(file_okay=False))
@click.option("--png", "png_path", type=click.Path(dir_okay=False),
              help="Write a montage of crops with joints and heatmaps here.")
@click.option("--split", type=click.Choice(["train", "val"]), default="train",
              show_default=True, help="Which samples to draw.")
@click.option("--count", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Samples in the montage.")
@click.option("--verify", is_flag=True,
              help="Check every shard against its checksum; exit 1 if any is damaged or "
                   "missing.")
def inspect_command(shards_dir, png_path, split, count, verify):
    """Show what `hgpipe prepare` wrote, and what training will see.

    \b
    Examples:
      hgpipe inspect runs/demo/shards --png montage.png
      hgpipe inspect shards --verify
    """
    with user_errors():
        damaged = shards.damaged_shards(shards_dir) if verify else None
        click.echo(shard_inspect.report(shards_dir, damaged))
        if damaged:
            raise shards.ShardError(shards.damage_message(damaged))
        if png_path:
            path = shard_inspect.write_montage(shards_dir, png_path, split, count)
            click.echo("\nmontage: %s" % path)
