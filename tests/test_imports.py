"""Importing hgpipe has no TensorFlow side effects: TF is imported, and switched out of
eager mode (``disable_v2_behavior``), only when a graph is built."""
import subprocess
import sys

from conftest import REPO_ROOT

MODULES = ("hgpipe.model.layers", "hgpipe.model.hourglass", "hgpipe.model.loss",
           "hgpipe.model.inference", "hgpipe.train.graph", "hgpipe.train.trainer",
           "hgpipe.eval.checkpoint", "hgpipe.eval.predict", "hgpipe.cli")

PROBE = """
import sys
for name in sys.argv[1:]:
    __import__(name)
print("imported" if "tensorflow" in sys.modules else "not imported")
import tensorflow as tf
print(tf.__version__.split(".")[0], tf.executing_eagerly())
from hgpipe.model import layers
layers.tf.Graph  # first use: now TF is configured for graphs
print(tf.compat.v1.executing_eagerly())
"""


def test_importing_the_package_leaves_tensorflow_alone():
    proc = subprocess.run([sys.executable, "-c", PROBE] + list(MODULES), cwd=REPO_ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")[-2000:]
    imported, (major, eager), (eager_after_use,) = [
        line.split() for line in proc.stdout.decode().strip().splitlines()[-3:]]
    assert imported == ["not", "imported"]
    # TF 2.x starts eager and must still be eager after the imports; TF 1.15 starts in
    # graph mode
    assert eager == ("True" if major == "2" else "False")
    assert eager_after_use == "False"  # a model module's first use of tf: graph mode
