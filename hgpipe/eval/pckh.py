"""PCKh scoring under the two conventions that published MPII numbers use.

PCKh counts a joint as correct when its distance to the ground truth, divided by the
person's head size (0.6 x head-box diagonal), is below a threshold.  Only annotated
joints are scored.  Published tables differ in three details, so each convention names
them explicitly and every printout says which one was used:

``tompson`` -- the table of Tompson et al. and of bearpaw's ``eval_PCKh.py`` (Newell's
  and most hourglass papers): correct iff ``d < t`` (strict); Head = head-top alone;
  Sho ... Ank = plain mean of the left and right joint scores; Mean = plain mean of the
  14 per-joint scores (all but pelvis and thorax).

``mpii`` -- the official MPII toolkit (``evaluatePCKh.m``, ``computePCK.m``,
  ``genTablePCK.m``): correct iff ``d <= t``; Head = plain mean of upper-neck and
  head-top; Sho ... Ank = plain mean of left and right (``genTablePCK`` averages the two
  per-joint scores, it does not pool them); UBody = pooled (count-weighted) over wrists,
  elbows and shoulders; Total = pooled over the same 14 joints.

Both conventions read the same distances; they differ only in ``<`` vs ``<=`` and in how
per-joint scores become columns.  Curves use thresholds 0, 0.01, ..., 0.5 and AUC is the
trapezoid area under a column's curve divided by the threshold span (0-100, as the
toolkit's ``area_under_curve(scale01(range), pck)``).
"""
from collections import OrderedDict
from typing import NamedTuple, Tuple

import numpy as np

from hgpipe.joints import (
    HEAD_TOP, JOINT_NAMES, L_ANKLE, L_ELBOW, L_HIP, L_KNEE, L_SHOULDER, L_WRIST, NUM_JOINTS,
    PELVIS, R_ANKLE, R_ELBOW, R_HIP, R_KNEE, R_SHOULDER, R_WRIST, THORAX, UPPER_NECK)

# The 14 joints every MPII table scores: all but pelvis and thorax.
SCORED_JOINTS = tuple(j for j in range(NUM_JOINTS) if j not in (PELVIS, THORAX))
UPPER_BODY_JOINTS = (R_WRIST, R_ELBOW, R_SHOULDER, L_SHOULDER, L_ELBOW, L_WRIST)
CURVE_THRESHOLDS = np.round(np.linspace(0.0, 0.5, 51), 10)  # 0:0.01:0.5 as in MATLAB

MEAN, POOLED = "mean", "pooled"  # how a column combines its joints' scores


class Column(NamedTuple):
    name: str
    joints: Tuple[int, ...]
    combine: str  # MEAN: plain mean of per-joint PCKh; POOLED: hits / annotated over joints


class Convention(NamedTuple):
    name: str
    strict: bool                 # True: d < t; False: d <= t
    columns: Tuple[Column, ...]  # the last column is the summary (Mean / Total)
    description: str


_LIMBS = (
    Column("Sho", (R_SHOULDER, L_SHOULDER), MEAN),
    Column("Elb", (R_ELBOW, L_ELBOW), MEAN),
    Column("Wri", (R_WRIST, L_WRIST), MEAN),
    Column("Hip", (R_HIP, L_HIP), MEAN),
    Column("Knee", (R_KNEE, L_KNEE), MEAN),
    Column("Ank", (R_ANKLE, L_ANKLE), MEAN),
)

CONVENTIONS = OrderedDict((c.name, c) for c in (
    Convention(
        "tompson", True,
        (Column("Head", (HEAD_TOP,), MEAN),) + _LIMBS
        + (Column("Mean", SCORED_JOINTS, MEAN),),
        "Tompson/bearpaw table: d/head < t (strict); Head = head-top; columns = mean of "
        "left and right; Mean = plain mean of 14 joints (no pelvis, thorax)"),
    Convention(
        "mpii", False,
        (Column("Head", (UPPER_NECK, HEAD_TOP), MEAN),) + _LIMBS
        + (Column("UBody", UPPER_BODY_JOINTS, POOLED),
           Column("Total", SCORED_JOINTS, POOLED)),
        "official MPII toolkit: d/head <= t; Head = mean(upper-neck, head-top); columns = "
        "mean of left and right; UBody and Total pooled (count-weighted) over "
        "shoulders-elbows-wrists and over 14 joints (no pelvis, thorax)"),
))


class PCKhResult(NamedTuple):
    convention: Convention
    threshold: float
    columns: "OrderedDict[str, float]"   # column -> PCKh (%) at ``threshold``
    columns_at_01: "OrderedDict[str, float]"  # column -> PCKh@0.1 (%)
    joint_pckh: np.ndarray               # (16,) per-joint PCKh (%) at ``threshold``
    joint_counts: np.ndarray             # (16,) annotated joints scored
    curve_thresholds: np.ndarray         # (T,)
    curves: "OrderedDict[str, np.ndarray]"  # column -> (T,) PCKh (%)
    auc: "OrderedDict[str, float]"       # column -> area under its curve (0-100)
    num_persons: int

    @property
    def summary_name(self):
        return self.convention.columns[-1].name

    def to_dict(self):
        """Plain JSON-able summary: numbers as floats (NaN -> None), lists not arrays."""
        def num(x):
            x = float(x)
            return None if np.isnan(x) else x
        return OrderedDict([
            ("convention", self.convention.name),
            ("description", self.convention.description),
            ("comparison", "<" if self.convention.strict else "<="),
            ("threshold", float(self.threshold)),
            ("num_persons", int(self.num_persons)),
            ("columns", OrderedDict((k, num(v)) for k, v in self.columns.items())),
            ("pckh_at_0.1", OrderedDict((k, num(v)) for k, v in self.columns_at_01.items())),
            ("auc", OrderedDict((k, num(v)) for k, v in self.auc.items())),
            ("joints", OrderedDict(
                (JOINT_NAMES[j], OrderedDict([("pckh", num(self.joint_pckh[j])),
                                              ("count", int(self.joint_counts[j]))]))
                for j in range(NUM_JOINTS))),
            ("curve", OrderedDict([
                ("thresholds", [float(t) for t in self.curve_thresholds]),
                ("columns", OrderedDict((k, [num(x) for x in v])
                                        for k, v in self.curves.items()))])),
        ])


def get_convention(name):
    """Look a convention up by name, with a one-line error listing the valid ones."""
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ValueError("unknown PCKh convention %r (choose from %s)"
                         % (name, ", ".join(CONVENTIONS)))


def normalized_distances(preds, gt):
    """(N, 16) distance / head size; NaN where the joint is not annotated.

    Non-finite predictions count as infinitely far (as the toolkit's ``pred(isnan) = inf``)
    so that a missing prediction is a miss, never silently skipped.
    """
    preds = np.asarray(preds, dtype=np.float64)
    preds = np.where(np.isfinite(preds), preds, np.inf)
    with np.errstate(invalid="ignore"):
        dist = np.sqrt(np.sum((preds - gt.joints) ** 2, axis=-1)) / gt.normalizer[:, None]
    dist[~gt.annotated] = np.nan
    return dist


def joint_hits(dist, thresholds, strict):
    """(T, 16) number of annotated joints within each threshold."""
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1, 1, 1)
    annotated = ~np.isnan(dist)
    d = np.where(annotated, dist, np.inf)[None]
    within = d < thresholds if strict else d <= thresholds
    return np.sum(within & annotated[None], axis=1)


def combine_columns(hits, counts, convention):
    """Per-joint hits (T, 16) and counts (16,) -> OrderedDict column -> (T,) PCKh (%)."""
    hits = np.asarray(hits, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        joint_pck = 100.0 * hits / counts
        out = OrderedDict()
        for column in convention.columns:
            idx = list(column.joints)
            if column.combine == POOLED:
                out[column.name] = 100.0 * hits[:, idx].sum(1) / counts[idx].sum()
            else:  # plain mean over joints that have any annotation
                out[column.name] = _nanmean(joint_pck[:, idx])
    return out


def score_pckh(preds, gt, convention="tompson", threshold=0.5,
               curve_thresholds=CURVE_THRESHOLDS):
    """Score predictions (N, 16, 2) against a GroundTruth under one named convention."""
    conv = convention if isinstance(convention, Convention) else get_convention(convention)
    preds = np.asarray(preds, dtype=np.float64)
    if preds.shape != gt.joints.shape:
        raise ValueError("predictions have shape %s but ground truth %s"
                         % (preds.shape, gt.joints.shape))
    dist = normalized_distances(preds, gt)
    counts = np.sum(gt.annotated, axis=0)
    curve_thresholds = np.asarray(curve_thresholds, dtype=np.float64)
    main = np.array([threshold, 0.1] + list(curve_thresholds), dtype=np.float64)
    hits = joint_hits(dist, main, conv.strict)
    cols = combine_columns(hits, counts, conv)
    with np.errstate(invalid="ignore", divide="ignore"):
        joint_pck = 100.0 * hits[0] / counts
    curves = OrderedDict((k, v[2:]) for k, v in cols.items())
    span = curve_thresholds[-1] - curve_thresholds[0] if len(curve_thresholds) > 1 else 0
    auc = OrderedDict((k, _trapezoid(v, curve_thresholds) / span if span > 0 else np.nan)
                      for k, v in curves.items())
    return PCKhResult(
        convention=conv, threshold=float(threshold),
        columns=OrderedDict((k, float(v[0])) for k, v in cols.items()),
        columns_at_01=OrderedDict((k, float(v[1])) for k, v in cols.items()),
        joint_pckh=joint_pck, joint_counts=counts.astype(np.int64),
        curve_thresholds=curve_thresholds, curves=curves,
        auc=OrderedDict((k, float(v)) for k, v in auc.items()),
        num_persons=int(preds.shape[0]))


def format_table(results, markdown=True, label=""):
    """Table of one or more results: one row per result at its threshold, @0.1 and AUC.

    Results of different conventions have different columns, so each gets its own header.
    """
    lines = []
    for result in results:
        names = list(result.columns)
        head = ["convention", "measure"] + names
        rows = [
            [result.convention.name, _measure_name(result.threshold)]
            + [_fmt(result.columns[k]) for k in names],
        ]
        if not np.isclose(result.threshold, 0.1):
            rows.append([result.convention.name, "PCKh@0.1"]
                        + [_fmt(result.columns_at_01[k]) for k in names])
        auc_name = "AUC %g-%g" % (result.curve_thresholds[0], result.curve_thresholds[-1])
        rows.append([result.convention.name, auc_name] + [_fmt(result.auc[k]) for k in names])
        if label:
            head.insert(0, "predictions")
            rows = [[label] + r for r in rows]
        if lines:
            lines.append("")
        lines.extend(_render(head, rows, markdown))
    return "\n".join(lines)


def format_joint_counts(result):
    """One line: how many annotated joints each column scored (why columns can differ)."""
    parts = []
    for column in result.convention.columns:
        count = int(result.joint_counts[list(column.joints)].sum())
        parts.append("%s %d" % (column.name, count))
    return "%s: annotated joints scored: %s" % (result.convention.name, ", ".join(parts))


def _measure_name(threshold):
    return "PCKh@%g" % threshold


def _render(head, rows, markdown):
    if markdown:
        out = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return out
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    return ["  ".join(str(x).rjust(w) for x, w in zip(r, widths)) for r in [head] + rows]


def _fmt(value):
    return "n/a" if value is None or np.isnan(value) else "%.2f" % value


def _nanmean(values):
    """Mean over the last axis ignoring NaN (a joint nobody annotated), without warnings."""
    valid = ~np.isnan(values)
    total = np.where(valid, values, 0.0).sum(-1)
    n = valid.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _trapezoid(y, x):
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)
