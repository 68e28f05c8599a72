"""Row 1: the online loader peers use (bearpaw/pytorch-pose, pose-hg-train), per sample.

Per sample it does what their ``__getitem__`` does: read the JPEG's bytes from disk,
decode them, draw a random augmentation, warp the crop, render 16 heatmaps and jitter the
colours (hgpipe's own :func:`make_sample`, so the work is identical to prepare's). Peers
also convert to float tensors afterwards; that is left out, which flatters the baseline.
Measured on one pinned core with OpenCV single-threaded, the page cache warm (a peer's
second epoch).
"""
import time
from typing import NamedTuple

import cv2
import numpy as np

from hgpipe.bench.report import make_row
from hgpipe.bench.system import cpu_seconds, one_core, per_cpu_rate, warm_page_cache
from hgpipe.data.transforms import make_sample, sample_augmentation


class OnlineResult(NamedTuple):
    samples: int
    seconds: float
    decode_seconds: float      # of which JPEG read + decode
    cpu: float                 # CPU seconds used

    @property
    def samples_per_sec(self):
        return self.samples / self.seconds

    @property
    def ms_per_sample(self):
        return 1000.0 * self.seconds / self.samples


def measure_online(source, cfg, samples, seed=0):
    """Run the peer-style loader over the source's persons, cycling, ``samples`` times."""
    data, prep = cfg["DataSetHG"], cfg["Prepare"]
    people = source.people
    rng = np.random.RandomState(seed)
    warm_page_cache(sorted(set(source.paths.values())))
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with one_core():
            decode = 0.0
            start, cpu = time.perf_counter(), cpu_seconds()
            for i in range(samples):
                record = people[i % len(people)]
                t0 = time.perf_counter()
                raw = np.fromfile(source.paths[record.image_name], dtype=np.uint8)
                image = cv2.imdecode(raw, cv2.IMREAD_COLOR)
                decode += time.perf_counter() - t0
                aug = sample_augmentation(rng, prep)
                make_sample(image, record, aug, data["img_size"], data["hm_size"],
                            prep["sigma"])
            seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    finally:
        cv2.setNumThreads(threads)
    return OnlineResult(samples, seconds, decode, cpu)


def online_rows(result):
    share = 100.0 * result.decode_seconds / result.seconds
    return [make_row("online.samples_per_sec", "online",
                     "peer loader, 1 core: read JPEG + decode + augment + heatmaps "
                     "(%.1f ms/sample, %.0f%% decode)" % (result.ms_per_sample, share),
                     result.samples_per_sec, "samples/s",
                     per_cpu=per_cpu_rate(result.samples, result.cpu))]
