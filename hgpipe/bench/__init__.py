"""``hgpipe bench``: where the time goes, from JPEG on disk to a training step.

One run measures, on this machine and in one process tree, the four stages the project
is built around, so that every claim about speed ("offline shards feed the device 40x
faster than a peer's online loader") is a number next to its target:

* :mod:`hgpipe.bench.online`  - the peers' per-sample loader (decode + augment + heatmaps);
* :mod:`hgpipe.bench.prepare` - ``hgpipe prepare`` throughput and bytes on disk;
* :mod:`hgpipe.bench.feed`    - ShardBatches + Prefetcher alone, warm and cold, against
  the memory-copy limit and the old block reader (:mod:`hgpipe.bench.block_reader`);
* :mod:`hgpipe.bench.mixing`  - how often sample pairs share a batch again next epoch,
  against a uniform permutation;
* :mod:`hgpipe.bench.train`   - the real Trainer for a few steps, with model FLOPs.

:mod:`hgpipe.bench.runner` orders the phases and :mod:`hgpipe.bench.report` prints the
one table. Nothing here is imported by training code.
"""
