"""The README's and docs/' own figures and links, recomputed: a wrong claim is a bug.

* every relative link of README.md and docs/*.md names a file that exists, and every
  ``#anchor`` of the README a heading it has;
* the *Get MPII* disk table is the shard schema's bytes per sample times the samples per
  person of each recipe, for MPII's 22,246 train and 2,958 val persons;
* the *Train a recipe* table's parameter counts are test_recipes.py's (which counts them
  from each reference's layer list and checks them against built graphs).
"""
import glob
import os
import re

import numpy as np

from conftest import REPO_ROOT
from hgpipe.config import load_config
from hgpipe.data import prepare
from test_recipes import PARAMETERS

README = os.path.join(REPO_ROOT, "README.md")
DOCS = sorted(glob.glob(os.path.join(REPO_ROOT, "docs", "*.md")))
MPII_TRAIN, MPII_VAL = 22246, 2958   # the Tompson split of the official annotations


def _text(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _anchor(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_relative_links_and_anchors_resolve():
    broken = []
    for path in [README] + DOCS:
        text = _text(path)
        anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            if target.startswith("#"):
                if target[1:] not in anchors:
                    broken.append("%s: %s" % (os.path.basename(path), target))
                continue
            file_part = target.split("#", 1)[0]
            if not os.path.exists(os.path.join(os.path.dirname(path), file_part)):
                broken.append("%s: %s" % (os.path.basename(path), target))
    assert not broken, broken
    assert len(DOCS) >= 8


def _sample_bytes(spec):
    return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize
               for shape, dtype, _ in spec.values())


def _full_mpii_gb(config_name):
    settings = prepare.shard_settings(
        load_config(os.path.join(REPO_ROOT, "configs", config_name + ".cfg")))
    train = MPII_TRAIN * prepare.samples_per_person(settings, "train") * \
        _sample_bytes(prepare._spec(settings, "train"))
    val = MPII_VAL * _sample_bytes(prepare._spec(settings, "val"))
    return "%.1f GB" % ((train + val) / 1e9)


def _table_rows(text, heading):
    section = text[text.index(heading):]
    section = section[:section.find("\n## ", 1)]
    return [line for line in section.splitlines() if line.startswith("| `")]


def test_get_mpii_disk_table_is_the_schema():
    rows = _table_rows(_text(README), "## Get MPII")
    assert rows
    checked = 0
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        names = re.findall(r"`([a-z0-9_]+)(?:/([a-z0-9]+))?`", cells[0])
        for first, second in names:
            configs = [first] + ([first[:-len(second)] + second] if second else [])
            for name in configs:
                assert _full_mpii_gb(name) == cells[-1], (name, cells[-1])
                checked += 1
    assert checked == 8   # every recipe but tiny


def test_recipe_table_parameter_counts_are_the_tested_ones():
    rows = _table_rows(_text(README), "## Train a recipe")
    checked = 0
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        names = re.findall(r"`(?:configs/)?([a-z0-9_]+)\.cfg`", cells[0])
        counts = [int(c.replace(",", "")) for c in re.findall(r"\d{1,3}(?:,\d{3})+", cells[2])]
        if len(counts) == 1:
            counts = counts * len(names)
        assert len(counts) == len(names), row
        for name, count in zip(names, counts):
            assert PARAMETERS[name] == count, (name, count)
            checked += 1
    assert checked == 8
