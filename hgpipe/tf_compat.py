"""The one door to TensorFlow: every hgpipe module gets ``tf`` from :func:`import_tf`.

hgpipe is written against the TF1 graph API (``tf.compat.v1``) because that is what the
Ascend images ship (TF 1.15.0), and it must run unchanged on current TF 2.x through the
same ``compat.v1`` namespace.  On TF 2.x that namespace alone is not enough: eager
execution, resource variables, control-flow v2 and v2 tensor shapes stay on unless
``disable_v2_behavior()`` is called (``disable_eager_execution()`` alone still leaves
``tf.get_variable`` with v2 variable semantics).  Doing that here, once, keeps the rest of
the package free of version checks.  It happens when a graph is first built, never when
a module is imported: a module that wants a module-level ``tf`` takes
``import_tf(lazy=True)``, a stand-in that imports on its first attribute access.
``tests/test_tf_api_lint.py`` checks that every ``tf.X.Y`` the package uses exists in the
TF 1.15 ``compat.v1`` API.
"""

import os

from hgpipe.native_stderr import quiet_native_stderr

_TF_V1 = None

INSTALL_HINT = (
    "TensorFlow is not installed or failed to import: run `pip install 'hgpipe[cpu]'` "
    "(installs tensorflow-cpu) or use your platform's TensorFlow build (e.g. the TF 1.15 "
    "shipped with Ascend images)"
)


class TensorFlowNotInstalledError(ImportError):
    """Raised by :func:`import_tf` when ``import tensorflow`` fails."""


class _LazyTF(object):
    """Stands for ``tensorflow.compat.v1``; the first attribute access imports it (through
    :func:`import_tf`, so with TF1 graph semantics switched on)."""

    def __getattr__(self, name):
        return getattr(import_tf(), name)

    def __repr__(self):
        return "<tensorflow.compat.v1, imported on first use>"


_LAZY_TF = _LazyTF()


def import_tf(lazy=False):
    """Return ``tensorflow.compat.v1`` with TF1 graph semantics switched on.

    Safe to call many times: TensorFlow is imported and configured on the first call only.
    Raises :class:`TensorFlowNotInstalledError` (an ``ImportError``) with install advice
    when TensorFlow is missing. ``lazy=True`` returns a stand-in that does all this on its
    first attribute access (for module-level ``tf = import_tf(lazy=True)``: importing the
    module then neither imports TensorFlow nor leaves eager mode).
    """
    global _TF_V1
    if lazy and _TF_V1 is None:
        return _LAZY_TF
    if _TF_V1 is not None:
        return _TF_V1
    try:
        with quiet_native_stderr():  # TF's C++ start-up lines; HGPIPE_DEBUG=1 shows them
            import tensorflow
    except ImportError as exc:
        raise TensorFlowNotInstalledError("%s (%s)" % (INSTALL_HINT, exc)) from exc
    tf_v1 = tensorflow.compat.v1
    if os.environ.get("HGPIPE_QUIET_TF"):
        # deprecation notices about TF's own internals mean nothing to hgpipe's users
        tf_v1.logging.set_verbosity(tf_v1.logging.ERROR)
    # On TF 2.x this is what makes compat.v1 behave like TF 1. On TF 1.15 it is a no-op
    # unless the environment asks for v2 behaviour (TF2_BEHAVIOR=1, which importing TF
    # 2.x sets and hands down to child processes): then it matters there too.
    tf_v1.disable_v2_behavior()
    _TF_V1 = tf_v1
    return tf_v1
