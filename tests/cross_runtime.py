"""Running a piece of a test under the other runtime (Python 3.7 + TF 1.15 <-> Python 3.11
+ TF 2.x), for the checks that one TensorFlow reads what the other wrote.

``bin/test`` sets ``HGPIPE_OTHER_PYTHON`` to the other lane's interpreter; without it those
tests skip. A test file doubles as the worker script: ``python tests/test_x.py CMD ARGS``
runs one of its worker functions (see :func:`worker_main`), which prints a JSON dict last.
"""
import json
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def other_python():
    """The other runtime's interpreter from HGPIPE_OTHER_PYTHON, or skip."""
    path = os.environ.get("HGPIPE_OTHER_PYTHON", "").strip()
    if not path:
        pytest.skip("HGPIPE_OTHER_PYTHON is not set: it names the other runtime's python "
                    "(bin/test sets it per lane) for the cross-runtime checks")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("HGPIPE_OTHER_PYTHON=%s is not an executable file" % path)
    return path


# Set in os.environ by ``import tensorflow`` 2.x (and cv2) and inherited by children:
# TF2_BEHAVIOR=1 would switch a TF 1.15 child into eager mode, and LD_LIBRARY_PATH
# would point it at this venv's libraries.
LEAKED_BY_TENSORFLOW = ("TF2_BEHAVIOR", "TPU_ML_PLATFORM", "TPU_ML_PLATFORM_VERSION",
                        "ENABLE_RUNTIME_UPTIME_TELEMETRY")


def worker_env():
    """This process's environment, minus what our own imports put there, with the
    repository on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items()
           if k not in LEAKED_BY_TENSORFLOW and k != "HGPIPE_OTHER_PYTHON"}
    prefix = os.path.realpath(sys.prefix)
    libraries = [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep)
                 if p and not os.path.realpath(p).startswith(prefix)]
    if libraries:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libraries)
    else:
        env.pop("LD_LIBRARY_PATH", None)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT] + paths)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def run_worker(python, script, *args):
    """Run ``script`` (a test file's worker mode) under ``python``; returns the JSON dict
    it prints last."""
    proc = subprocess.run([python, script] + [str(a) for a in args], env=worker_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")[-3000:]
    return json.loads(proc.stdout.decode("utf-8").strip().splitlines()[-1])


def worker_main(commands):
    """Entry point of a test file run as a worker: ``commands`` maps CMD to a function
    of the remaining arguments returning a JSON-able dict."""
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        raise SystemExit("usage: %s {%s} ARGS" % (sys.argv[0], ",".join(sorted(commands))))
    print(json.dumps(commands[sys.argv[1]](*sys.argv[2:])))


def randomized_initial_values(tf, rng):
    """A feed for ``global_variables_initializer`` giving batch-norm statistics, gammas,
    betas and biases random values: their defaults (0/1) would hide a restore that
    silently skipped them."""
    values = {}
    for variable in tf.global_variables():
        name, shape = variable.op.name, variable.shape.as_list()
        if name.endswith(("moving_variance", "gamma")):
            values[variable.initial_value] = rng.uniform(0.5, 1.5, shape)
        elif name.endswith(("moving_mean", "beta", "biases")):
            values[variable.initial_value] = rng.normal(0.0, 0.2, shape)
    return values
