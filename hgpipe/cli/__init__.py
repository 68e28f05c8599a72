"""The ``hgpipe`` command line: one click group, one module per command."""
import click

from hgpipe import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hgpipe")
def main():
    """Stacked Hourglass pose estimation on MPII: prepare shards, train, evaluate."""


def _register():
    # Imported here so that each command module stays independent of the others.
    from hgpipe.cli import commands  # noqa: F401


_register()
