"""Keep TensorFlow's start-up chatter off the user's terminal without losing real errors.

Importing TensorFlow 2.x prints, from C++ straight to file descriptor 2 and before any
Python logging setting can act, ``WARNING: All log messages before absl::InitializeLog()
is called are written to STDERR`` and an ``I0000 ... oneDNN custom operations are on``
line, twice: ``libtensorflow_framework.so.2`` and the profiler's
``_pywrap_profiler_plugin.so`` each carry a copy of that start-up code and each runs it
when loaded (seen with ``LD_DEBUG=files`` on TF 2.21).
``TF_CPP_MIN_LOG_LEVEL`` cannot silence them: they are written before absl's logging
reads it. A newcomer reads them as errors.

:func:`quiet_native_stderr` points descriptor 2 at a temporary file while the block runs
and afterwards writes back every line that is not known noise, so warnings from Python,
tracebacks and TensorFlow's E (error) and F (fatal) lines still reach the user. With
``HGPIPE_DEBUG=1`` nothing is captured. (A process killed inside the block, e.g. by a
fatal C++ check, loses what was captured: rerun with ``HGPIPE_DEBUG=1`` to see it.)
"""
import contextlib
import os
import re
import sys
import tempfile

# Lines that only say TensorFlow started: absl's pre-initialisation notice, and glog-style
# lines of severity I (info) or W (warning) in TF 2.x ("I0000 00:00:1796045295.372316 6160
# port.cc:153] ...") and TF 1.x ("2026-11-30 13:28:26.936757: I tensorflow/core/...") form,
# with the one continuation line TF 2.x writes under its CPU-feature notice.
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ ]+:\d+\]"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] "
    r"|To enable the following instructions: .*rebuild TensorFlow)")


def is_noise(line):
    """True for a start-up line that says nothing the user must act on."""
    return NOISE.match(line) is not None


def debug_requested():
    return bool(os.environ.get("HGPIPE_DEBUG"))


@contextlib.contextmanager
def quiet_native_stderr():
    """Capture descriptor 2 during the block; replay all but :func:`is_noise` lines."""
    if debug_requested():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode("utf-8", "replace")
                    .splitlines(True) if not is_noise(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
