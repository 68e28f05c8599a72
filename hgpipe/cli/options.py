"""Options and error handling shared by the commands."""
import contextlib
import functools
import os
import sys

import click

from hgpipe.config import load_config


def config_options(func):
    """--config FILE and repeatable --set Section.key=value; passes ``cfg``."""
    @click.option("--config", "config_path", type=click.Path(dir_okay=False),
                  help="INI config (the seed's config.cfg format is accepted).")
    @click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                  help="Override one config value, e.g. --set Train.batch_size=8 "
                       "(repeatable).")
    @functools.wraps(func)
    def wrapper(config_path, overrides, **kwargs):
        with user_errors():
            cfg = load_config(config_path, overrides)
        if cfg.ignored_keys():
            echo_err("%s: accepted for seed compatibility, ignored: %s" % (
                config_path or "--set", ", ".join(cfg.ignored_keys())))
        return func(cfg=cfg, **kwargs)
    return wrapper


class DeviceType(click.ParamType):
    """``--device``: cpu, gpu or npu, in any case, and the names users bring from other
    tools (``cuda``, ``ascend``); anything else is refused naming the accepted words."""

    name = "device"
    SPELLINGS = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu", "npu": "npu", "ascend": "npu"}

    def convert(self, value, param, ctx):
        if value is None:
            return None
        device = self.SPELLINGS.get(str(value).strip().lower())
        if device is None:
            self.fail("%r is not a device; use cpu, gpu (or cuda) or npu (or ascend), in "
                      "any case" % value, param, ctx)
        return device

    def get_metavar(self, param, ctx=None):
        return "cpu|gpu|npu"


DEVICE = DeviceType()


@contextlib.contextmanager
def user_errors():
    """Turn the package's input errors into one clear line and exit status 1.

    Every hgpipe error about bad input is a ValueError (or an OS error about a file)
    whose message already names the file and the problem; a traceback would only hide
    it. Set HGPIPE_DEBUG=1 to see tracebacks anyway.
    """
    try:
        yield
    except (ValueError, OSError, IOError, KeyError, ImportError) as exc:
        if os.environ.get("HGPIPE_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        if isinstance(exc, (OSError, IOError)) and getattr(exc, "filename", None):
            message = "%s: %s" % (exc.filename, exc.strerror or message)
        raise click.ClickException(message)


def echo_err(message):
    click.echo(message, err=True)
    sys.stderr.flush()
