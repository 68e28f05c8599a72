"""hgpipe bench: the table's structure and arithmetic, and the measuring tools it relies on.

No timing is asserted (the machine is shared); what is asserted is that every number is
a real measurement (positive, from real files), that derived rows are the quotients of
the printed rows they name, and that the tools do what they claim (pages really leave
the page cache, FLOPs match an independent count).
"""
import json
import os

import numpy as np
import pytest

from conftest import REPO_ROOT, cli_runner, make_synthetic_mpii
from hgpipe.bench import flops as flops_bench
from hgpipe.bench import mixing
from hgpipe.bench.report import COLUMNS, format_value
from hgpipe.bench.sources import load_source, training_people
from hgpipe.bench.system import (disk_read_bandwidth, evict_from_page_cache,
                                 resident_fraction, warm_page_cache)
from hgpipe.cli.bench_cmd import bench_command
from hgpipe.data.images import ImageLocator, decode_image

# image 256x256x3 + heatmaps 64x64x16 (uint8) + weights 16 x float32
TRAIN_BYTES_256 = 256 * 256 * 3 + 64 * 64 * 16 + 16 * 4


def parse_markdown_table(text):
    """Rows of a table printed by :func:`hgpipe.bench.report.markdown_table`, as dicts."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    assert len(lines) >= 2, "no Markdown table in the text"
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|"))))
            for line in lines[2:]]


def _number(text):
    return float(text.replace(",", ""))


@pytest.fixture(scope="module")
def quick_bench(shared_mpii, tmp_path_factory):
    """One `hgpipe bench --quick --skip train` on the real MPII images."""
    work = tmp_path_factory.mktemp("bench_work")
    json_path = str(tmp_path_factory.mktemp("bench_out") / "bench.json")
    result = cli_runner().invoke(bench_command, [
        "--mpii", shared_mpii, "--quick", "--skip", "train", "--json", json_path,
        "--workdir", str(work)])
    assert result.exit_code == 0, result.output + str(result.exception)
    with open(json_path) as handle:
        payload = json.load(handle)
    return result.stdout, payload, work


def test_table_has_every_phase_and_positive_numbers(quick_bench):
    stdout, payload, _ = quick_bench
    table = parse_markdown_table(stdout)
    assert list(table[0].keys()) == list(COLUMNS)
    assert {row["phase"] for row in table} == {"online", "prepare", "feed", "ratio",
                                               "storage", "mixing"}
    for row in table:
        assert _number(row["value"]) > 0, row
        if row["per CPU-s"]:
            assert _number(row["per CPU-s"]) > 0, row
    # the JSON holds the same rows, in the same order, with the printed values
    assert [r["what"] for r in payload["rows"]] == [row["measurement"] for row in table]
    for printed, stored in zip(table, payload["rows"]):
        assert printed["value"] == format_value(stored["value"])
        if stored["target"]:
            op, bound = stored["target"].split()
            met = stored["value"] >= float(bound) if op == ">=" else stored["value"] < float(bound)
            assert printed["met"] == ("yes" if met else "NO")
    assert payload["meta"]["cores"] >= 1 and payload["meta"]["python"]


def test_ratios_are_quotients_of_printed_rows(quick_bench):
    stdout, payload, _ = quick_bench
    printed = {stored["key"]: _number(row["value"])
               for stored, row in zip(payload["rows"], parse_markdown_table(stdout))}
    ratios = [r for r in payload["rows"] if r["of"]]
    keys = {r["key"] for r in ratios}
    assert {"ratio.feed_online", "ratio.feed_limit", "storage.verdict",
            "ratio.feed_block.warm", "ratio.feed_block.cold", "ratio.prepare_online",
            "ratio.feed_disk"} <= keys
    for row in ratios:
        numerator, denominator = row["of"]
        assert printed[row["key"]] == pytest.approx(
            printed[numerator] / printed[denominator], rel=0.012), row["key"]
    # the limit is the memory bandwidth expressed in samples of the fed size
    assert printed["feed.limit"] == pytest.approx(
        printed["feed.memcpy"] * 1e9 / TRAIN_BYTES_256, rel=0.012)
    # and the cold limit the disk's read rate, in the same samples
    assert printed["feed.disk_limit"] == pytest.approx(
        printed["feed.disk"] * 1e9 / TRAIN_BYTES_256, rel=0.012)
    cores = payload["meta"]["cores"]
    if cores > 1:
        assert printed["prepare.%dw.per_core" % cores] == pytest.approx(
            printed["prepare.%dw.rate" % cores] / cores, rel=0.012)


def test_storage_rows_follow_the_bytes_written(quick_bench):
    _, payload, work = quick_bench
    value = {r["key"]: r["value"] for r in payload["rows"]}
    # uncompressed shards hold at least the training bytes of every sample; the mostly
    # zero heatmaps shrink under gzip
    assert value["prepare.bytes.none"] >= TRAIN_BYTES_256
    assert value["prepare.bytes.gzip"] < value["prepare.bytes.none"] - 0.5 * 64 * 64 * 16
    persons = 22246  # training persons of the MPII annotation file
    assert value["storage.full.gzip"] == pytest.approx(
        persons * 8 * value["prepare.bytes.gzip"] / 1e9)
    verdict = [r for r in payload["rows"] if r["key"] == "storage.verdict"][0]
    assert verdict["what"].endswith("gzip pays" if verdict["value"] > 1 else "none pays")
    cold = [r for r in payload["rows"] if r["key"].startswith("feed.cold")]
    assert cold and all("evicted by" in r["what"] for r in cold)
    assert os.listdir(str(work)) == []   # scratch shards removed


def test_mixing_rows_put_the_reader_at_uniform_and_the_block_reader_far_off(quick_bench):
    _, payload, _ = quick_bench
    value = {r["key"]: r["value"] for r in payload["rows"]}
    assert abs(value["mixing.reader"] - value["mixing.uniform"]) == pytest.approx(
        value["mixing.z"] * value["mixing.noise"], rel=1e-6)
    assert value["mixing.block"] > value["mixing.uniform"] + 10 * value["mixing.noise"]


def test_pair_repeat_fraction_counts_pairs_meeting_again():
    first = np.array([[0, 1, 2], [3, 4, 5]])
    assert mixing.pair_repeat_fraction(first, first, 7) == 1.0
    # pairs of epoch 1: (0,1) (0,2) (1,2) (3,4) (3,5) (4,5); together again: (0,1), (4,5);
    # sample 3 sat epoch 2 out, so its pairs did not meet again
    second = np.array([[1, 0, 6], [2, 4, 5]])
    assert mixing.pair_repeat_fraction(first, second, 7) == pytest.approx(2 / 6.0)


def test_uniform_expectation_and_noise_match_simulated_permutations():
    total, batches, size = 200, 12, 8
    rng = np.random.RandomState(3)

    def epoch(_e):
        return rng.permutation(total)[:batches * size].reshape(batches, size)
    runs = [mixing.mean_repeat_fraction(epoch, total) for _ in range(300)]
    expected = mixing.uniform_expected(total, batches, size)
    noise = mixing.uniform_noise(total, batches, size)
    assert np.mean(runs) == pytest.approx(expected, abs=3 * np.std(runs) / np.sqrt(300))
    assert noise == pytest.approx(np.std(runs), rel=0.35)


def test_bad_dataset_and_shards_dirs_are_one_line_errors(tmp_path):
    missing = str(tmp_path / "nowhere")
    result = cli_runner().invoke(bench_command, ["--mpii", missing, "--skip", "train"])
    assert result.exit_code == 1
    assert "nowhere: dataset folder not found" in result.stderr
    empty = tmp_path / "shards"
    empty.mkdir()
    result = cli_runner().invoke(bench_command, ["--data", str(empty), "--skip", "train"])
    assert result.exit_code == 1
    assert "no manifest.json" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_page_cache_eviction_is_real(tmp_path):
    path = str(tmp_path / "blob.bin")
    with open(path, "wb") as out:
        out.write(np.random.RandomState(0).bytes(4 << 20))
    warm_page_cache([path])
    if resident_fraction([path]) is None:
        pytest.skip("mincore is not available here")
    assert resident_fraction([path]) == 1.0
    method, resident = evict_from_page_cache([path])
    assert method in ("posix_fadvise(DONTNEED)", "drop_caches")
    assert resident == resident_fraction([path]) and resident <= 0.05


def test_disk_read_rate_reads_every_byte_cold(tmp_path):
    paths = [str(tmp_path / name) for name in ("a.bin", "b.bin")]
    for path in paths:
        with open(path, "wb") as out:
            out.write(np.random.RandomState(0).bytes(3 << 20))
    if resident_fraction(paths) is None:
        pytest.skip("mincore is not available here")
    rate, method = disk_read_bandwidth(paths, repeats=1)
    assert method in ("posix_fadvise(DONTNEED)", "drop_caches") and rate > 0
    assert resident_fraction(paths) == 1.0   # it read the files, all of them


def test_training_copies_keep_persons_per_image(tmp_path):
    root, _ = make_synthetic_mpii(str(tmp_path / "data"), n_images=4, seed=4)
    source = load_source(root)   # 1 or 2 persons per image, train and val
    people = training_people(source, 20, str(tmp_path / "images"))
    assert len(people) >= 20 and not any(p.is_validation for p in people)
    per_image = {}
    for person in people:
        per_image.setdefault(person.image_name, []).append(person)
    # the copies are symlinks to the source's images, which the bench allows as bench does
    locator = ImageLocator(str(tmp_path / "images"),
                           roots=[str(tmp_path / "images"), source.images_dir])
    for name, persons in per_image.items():
        original = name.split("_", 1)[1]
        assert len(persons) == sum(p.image_name == original for p in source.people)
        copy = decode_image(locator.find(name))
        assert np.array_equal(copy, decode_image(source.paths[original]))


def test_train_and_distributed_phases_share_the_shards_prepared_for_a_config(tmp_path):
    """A train config of another crop size gets its shards prepared once, whichever
    phases read them (the distributed phase used to prepare them a second time into the
    same folder and fail)."""
    from hgpipe.bench.runner import QUICK_SIZES, Bench
    from hgpipe.config import load_config
    root, _ = make_synthetic_mpii(str(tmp_path / "data"), n_images=6, seed=3)
    bench = Bench(load_config(None), mpii_dir=root, sizes=QUICK_SIZES._replace(train_samples=24),
                  skip=("online", "prepare", "feed"), work_dir=str(tmp_path))
    bench.work = str(tmp_path / "work")
    os.makedirs(bench.work)
    cfg = load_config(None, ["DataSetHG.img_size=64", "DataSetHG.hm_size=16",
                             "Prepare.variants=2"])
    first = bench._train_shards(cfg, "small", None)
    assert bench._train_shards(cfg, "small", None) == first
    assert sorted(os.listdir(bench.work)) == ["images", "train_shards_small"]


def test_conv_flops_match_hand_count_and_tf_profiler():
    from hgpipe.tf_compat import import_tf
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, (2, 16, 16, 3))
        w1 = tf.placeholder(tf.float32, (3, 3, 3, 8))
        w2 = tf.placeholder(tf.float32, (1, 1, 8, 4))
        y = tf.nn.conv2d(x, w1, [1, 1, 1, 1], "SAME")             # (2, 16, 16, 8)
        z = tf.nn.conv2d(y, w2, [1, 2, 2, 1], "VALID")            # (2, 8, 8, 4)
        conv1, conv2 = 2 * (2 * 16 * 16 * 8) * 27, 2 * (2 * 8 * 8 * 4) * 8
        forward = flops_bench.count_conv_flops(graph)
        options = tf.profiler.ProfileOptionBuilder(
            tf.profiler.ProfileOptionBuilder.float_operation()).with_empty_output().build()
        profiled = tf.profiler.profile(graph, options=options).total_float_ops
        loss = tf.reduce_sum(z)
        grads = tf.gradients(loss, [w1, w2])
        step = flops_bench.count_conv_flops(graph, [loss] + grads)
    assert forward == (conv1 + conv2, 0.0, 2)
    assert profiled == conv1 + conv2
    # the step needs both filter gradients but the input gradient of conv2 only (the
    # graph also holds conv1's input gradient, which nothing runs)
    assert step.forward == conv1 + conv2
    assert step.backward == conv1 + 2 * conv2


def test_train_row_runs_the_trainer_and_counts_its_flops(tmp_path):
    from hgpipe.bench import prepare as prepare_bench
    from hgpipe.bench import train as train_bench
    from hgpipe.config import load_config
    root, _ = make_synthetic_mpii(str(tmp_path / "data"), n_images=6, seed=3)
    source = load_source(root)
    cfg = load_config(None, ["DataSetHG.img_size=64", "DataSetHG.hm_size=16",
                             "Network.nStacks=1", "Network.nFeats=8", "Network.nLow=1",
                             "Train.batch_size=2", "Prepare.variants=2"])
    shards = prepare_bench.prepare_shards(source, prepare_bench.bench_config(cfg, 16), 12,
                                          1, str(tmp_path), "shards")
    assert shards.samples >= 12 and shards.input_size == 64
    result = train_bench.measure_train(cfg, "small", shards.out_dir, 3,
                                       str(tmp_path / "logdir"), echo=lambda m: None,
                                       progress=False)
    assert result.steps == 3 and result.batch_size == 2 and result.images_per_sec > 0
    assert 0.0 <= result.input_wait < 1.0
    # every convolution runs forward, input- and filter-gradient; the 7x7/2 stem's input
    # gradient (3 -> 64 channels, 32x32 output) is useless - its input is the data - but
    # runs anyway when the optimizer gates each op's gradients together (GATE_OP)
    stem = 2.0 * (32 * 32 * 64) * (7 * 7 * 3)
    assert result.training_flops in (3 * result.forward_flops,
                                     3 * result.forward_flops - stem)
    rows = {row.key: row.value for row in train_bench.train_rows(result)}
    assert rows["train.small.gflops"] == pytest.approx(
        rows["train.small.gflop_train"] * rows["train.small.images_per_sec"])


def test_device_augment_rows_time_the_same_config_with_flip_and_colour(tmp_path):
    from hgpipe.bench import prepare as prepare_bench
    from hgpipe.bench import train as train_bench
    from hgpipe.config import load_config
    root, _ = make_synthetic_mpii(str(tmp_path / "data"), n_images=6, seed=3)
    cfg = load_config(None, ["DataSetHG.img_size=64", "DataSetHG.hm_size=16",
                             "Network.nStacks=1", "Network.nFeats=8", "Network.nLow=1",
                             "Train.batch_size=2", "Prepare.variants=2"])
    shards = prepare_bench.prepare_shards(load_source(root), prepare_bench.bench_config(cfg, 16),
                                          12, 1, str(tmp_path), "shards")
    augmented_cfg = train_bench.with_device_augment(cfg)
    assert augmented_cfg["Train"]["device_flip"] and augmented_cfg["Train"]["device_color"] == 0.2
    assert not cfg["Train"]["device_flip"]
    runs = [train_bench.measure_train(c, "small", shards.out_dir, 3, str(tmp_path / name),
                                      echo=lambda m: None, progress=False)
            for c, name in ((cfg, "off"), (augmented_cfg, "on"))]
    op_ms = train_bench.time_device_augment_op(2, 64, 16, runs=5)
    assert op_ms >= 0.0
    rows = {row.key: row for row in train_bench.device_augment_rows(runs[0], runs[1], op_ms)}
    ratio = rows["train.small.device_augment.ratio"]
    assert ratio.value == pytest.approx(runs[1].step_ms / runs[0].step_ms)
    assert ratio.target == "< 1.02" and ratio.met == (ratio.value < 1.02)
    assert rows["train.small.device_augment.op_fraction"].value == pytest.approx(
        100 * op_ms / runs[0].step_ms)


def test_predict_rows_time_a_folder_run_against_a_process_per_image(tmp_path):
    """The predict phase on the train phase's model: both rows are real runs of the
    command (their outputs exist), and the ratio is their quotient."""
    from hgpipe.bench.runner import QUICK_SIZES, Bench
    from hgpipe.config import load_config
    root, _ = make_synthetic_mpii(str(tmp_path / "data"), n_images=4, seed=3)
    tiny = os.path.join(REPO_ROOT, "configs", "tiny.cfg")
    sizes = QUICK_SIZES._replace(train_samples=16, train_steps={"tiny": 2},
                                 predict_images=3, predict_loop=1)
    bench = Bench(load_config(None), mpii_dir=root, train_configs=[tiny], sizes=sizes,
                  skip=("online", "prepare", "feed", "distributed"), work_dir=str(tmp_path),
                  keep=True, progress=False)
    rows, _, _ = bench.run()
    by_key = {row.key: row for row in rows}
    folder, one = by_key["predict.folder"], by_key["predict.per_image"]
    assert folder.value > 0 and one.value > 0
    assert by_key["ratio.predict_folder"].value == pytest.approx(folder.value / one.value)
    with open(os.path.join(bench.work, "predict_folder", "predictions.jsonl")) as handle:
        assert len(handle.read().splitlines()) == 3
    assert os.path.isfile(os.path.join(bench.work, "predict_one_0", "predictions.jsonl"))
