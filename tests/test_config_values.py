"""Config values that would pass a type check and then poison a run are refused when the
file is loaded, in one line naming the file and the key (issue 19, item 8 and 7)."""
import os

import pytest

from conftest import cli_runner
from hgpipe.cli import main
from hgpipe.config import ConfigError, load_config


def _write(path, text):
    with open(path, "wb") as out:
        out.write(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


@pytest.mark.parametrize("section, key, value, words", [
    ("Prepare", "sigma", "inf", "must be a finite number"),
    ("Prepare", "sigma", "nan", "must be a finite number"),
    ("Prepare", "rotation", "1e308", "must be <= 180"),
    ("Prepare", "scale_factor", "-inf", "must be a finite number"),
    ("Prepare", "seed", "-1", "must be in [0, 2**32)"),
    ("Train", "learning_rate", "inf", "must be a finite number"),
    ("Train", "prefetch_batches", "100000000", "must be <= 1024"),
    ("Train", "batch_size", "100000", "must be <= 4096"),
    ("Train", "lr_milestones", "[" * 5000, "at most 1000"),
    ("Network", "input_mean", "nan 0.4 0.4", "must be a finite number"),
    ("Network", "nLow", "40", "must be <= 8"),
])
def test_poisonous_values_are_refused_naming_file_and_key(tmp_path, section, key, value,
                                                          words):
    path = _write(str(tmp_path / "run.cfg"), "[%s]\n%s = %s\n" % (section, key, value))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(path + ": ") and "[%s] %s" % (section, key) in message
    assert words in message and "\n" not in message and len(message) < 300


def test_input_size_must_fit_the_poolings(tmp_path):
    # 68 = 4 * 17 passes hm_size = img_size / 4 but not the hourglass's 4 * 2**nLow
    path = _write(str(tmp_path / "odd.cfg"), "[DataSetHG]\nimg_size = 68\nhm_size = 17\n")
    with pytest.raises(ConfigError, match=r"odd.cfg: img_size must be a multiple of 64 for "
                                          r"nLow=4 .* got img_size=68"):
        load_config(path)
    with pytest.raises(ConfigError, match="multiple of 16 for nLow=2"):
        load_config(path, ["Network.nLow=2"])  # 68 is not a multiple of 16 either
    assert load_config(None, ["DataSetHG.img_size=64", "DataSetHG.hm_size=16",
                              "Network.nLow=2"])


def test_the_network_checks_the_config_rule():
    from hgpipe.config import input_size_multiple
    from hgpipe.model import hourglass
    assert hourglass.input_size_multiple is input_size_multiple
    assert [input_size_multiple(n) for n in (1, 2, 4)] == [8, 16, 64]


def test_sigma_wider_than_the_heatmap_is_refused():
    with pytest.raises(ConfigError, match=r"sigma must be at most hm_size \(16"):
        load_config(None, ["DataSetHG.img_size=64", "DataSetHG.hm_size=16",
                           "Prepare.sigma=17"])


def test_feed_memory_is_bounded_before_anything_is_allocated(tmp_path):
    path = _write(str(tmp_path / "big.cfg"),
                  "[Train]\nprefetch_batches = 1000\nbatch_size = 256\n")
    with pytest.raises(ConfigError, match=r"big.cfg: \[Train\] prefetch_batches=1000 with "
                                          r"batch_size=256 needs 62.7 GiB"):
        load_config(path)


def test_non_utf8_config_names_the_file(tmp_path):
    path = _write(str(tmp_path / "latin1.cfg"), b"[Train]\n# caf\xe9\nbatch_size = 4\n")
    result = cli_runner().invoke(main, ["prepare", "--mpii", str(tmp_path), "--out",
                                        str(tmp_path / "out"), "--config", path])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("Error: %s: not UTF-8 text (byte 0xe9 at offset 13); "
                                     "save the config as UTF-8" % path)


def test_prepare_with_infinite_sigma_writes_nothing(tmp_path):
    out = str(tmp_path / "shards")
    result = cli_runner().invoke(main, ["prepare", "--mpii", str(tmp_path), "--out", out,
                                        "--set", "Prepare.sigma=inf"])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "sigma = 'inf': must be a finite number" in result.stderr
    assert not os.path.exists(out)


def test_every_recipe_still_loads():
    recipes = os.path.join(os.path.dirname(__file__), os.pardir, "configs")
    names = sorted(n for n in os.listdir(recipes) if n.endswith(".cfg"))
    assert len(names) >= 7
    for name in names:
        load_config(os.path.join(recipes, name))
