"""The ``hgpipe`` command line: one click group, one module per command."""
import os

import click

from hgpipe import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hgpipe")
def main():
    """Stacked Hourglass pose estimation on MPII: prepare shards, train, evaluate."""
    # TensorFlow is imported lazily by the commands that need it; keep its C++ start-up
    # chatter and Python deprecation notices out of the command's output (see
    # hgpipe/native_stderr.py), unless HGPIPE_DEBUG=1 asks to see everything.
    if not os.environ.get("HGPIPE_DEBUG"):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("HGPIPE_QUIET_TF", "1")


def _register():
    # Imported here so that each command module stays independent of the others.
    from hgpipe.cli import commands  # noqa: F401


_register()
