"""Batch prediction against the loop it replaces: one ``hgpipe predict`` over a folder
against one ``hgpipe predict`` process per image.

Both are timed as a user runs them, wall clock from the shell, start-up included: the
loop pays TensorFlow's import, the graph build and the checkpoint restore once per image;
the folder run pays them once and then runs its crops through the model in batches.
The model is the train phase's tiny logdir (the network's size matters less than the
start-up it amortises: the ratio says what loading once is worth on this machine, for a
model of this size).
"""
import os
import subprocess
import sys
import time
from typing import NamedTuple

from hgpipe.atomic import ensure_dir
from hgpipe.bench.report import BenchError, make_row, ratio_row


class PredictResult(NamedTuple):
    folder_images: int
    folder_seconds: float
    loop_images: int
    loop_seconds: float

    @property
    def folder_rate(self):
        return self.folder_images / self.folder_seconds

    @property
    def loop_rate(self):
        return self.loop_images / self.loop_seconds


def image_folder(paths, count, folder):
    """``count`` numbered symlinks to the dataset's images (repeated in order), so the
    folder run decodes as many distinct files as a user's folder of that size."""
    ensure_dir(folder)
    sources = sorted(paths)
    if not sources:
        raise BenchError("no images to predict on")
    made = []
    for i in range(count):
        source = sources[i % len(sources)]
        link = os.path.join(folder, "img%05d%s" % (i, os.path.splitext(source)[1].lower()))
        os.symlink(os.path.abspath(source), link)
        made.append(link)
    return made


def _predict(inputs, logdir, out_dir):
    command = [sys.executable, "-m", "hgpipe", "predict"] + list(inputs) + [
        "--checkpoint", logdir, "--out", out_dir]
    started = time.time()
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    seconds = time.time() - started
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BenchError("hgpipe predict failed in the bench: %s" % tail)
    return seconds


def measure_predict(logdir, image_paths, folder_images, loop_images, work):
    """Time one folder run over ``folder_images`` images, then ``loop_images`` runs of one
    image each (the first images of the same folder)."""
    folder = os.path.join(work, "predict_images")
    images = image_folder(image_paths, folder_images, folder)
    folder_seconds = _predict([folder], logdir, os.path.join(work, "predict_folder"))
    loop_seconds = 0.0
    for i, image in enumerate(images[:loop_images]):
        loop_seconds += _predict([image], logdir, os.path.join(work, "predict_one_%d" % i))
    return PredictResult(folder_images, folder_seconds, loop_images, loop_seconds)


def predict_rows(result, model_name):
    rows = [
        make_row("predict.folder", "predict", "hgpipe predict FOLDER (%d images, one process, "
                 "%s model, start-up included)" % (result.folder_images, model_name),
                 result.folder_rate, "images/s"),
        make_row("predict.per_image", "predict", "one hgpipe predict process per image (%d "
                 "images, the shell loop it replaces)" % result.loop_images,
                 result.loop_rate, "images/s"),
    ]
    rows.append(ratio_row("ratio.predict_folder", "predict: one folder run / a process per "
                          "image", rows, "predict.folder", "predict.per_image"))
    return rows
