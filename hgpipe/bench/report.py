"""The bench's one table: rows with a value, a unit and the target it is judged against.

Rows are plain data so that the Markdown table, the JSON file and the tests all read the
same numbers; a ratio row names the two rows it divides (``of``), so anyone can check it
against the printed values.
"""
import math
from typing import NamedTuple, Optional, Tuple

from hgpipe import atomic


class BenchError(ValueError):
    """The bench cannot run as asked (no data, bad shards directory, ...)."""


class Row(NamedTuple):
    key: str                 # stable identifier, e.g. "feed.warm.b16"
    phase: str               # online | prepare | feed | ratio | storage | train
    what: str                # human description of the measurement
    value: float
    unit: str
    target: str = ""         # e.g. ">= 500"; empty when there is none
    met: Optional[bool] = None
    of: Optional[Tuple[str, str]] = None   # (numerator key, denominator key) of a ratio
    per_cpu: Optional[float] = None        # the same amount per CPU-second actually used

    def as_dict(self):
        out = self._asdict()
        out["of"] = list(self.of) if self.of else None
        return out


def judge(value, target):
    """Whether ``value`` meets a target written as '>= x' or '< x' (None: no target)."""
    if not target:
        return None
    op, number = target.split()
    number = float(number.replace(",", ""))
    if op == ">=":
        return value >= number
    if op == "<":
        return value < number
    raise BenchError("unknown target form %r" % target)


def make_row(key, phase, what, value, unit, target="", per_cpu=None):
    """A measured row; ``per_cpu`` is the rate per CPU-second (load-independent)."""
    value = float(value)
    return Row(key, phase, what, value, unit, target, judge(value, target),
               per_cpu=None if per_cpu is None else float(per_cpu))


def ratio_row(key, what, rows, numerator, denominator, target="", phase="ratio"):
    """A row dividing two earlier rows' values (by key)."""
    by_key = {row.key: row for row in rows}
    value = by_key[numerator].value / by_key[denominator].value
    return Row(key, phase, what, value, "x", target, judge(value, target),
               (numerator, denominator))


def format_value(value):
    """Enough digits that any quotient of printed values is within 0.5% of the real one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 100:
        return "%.0f" % value
    if magnitude >= 10:
        return "%.1f" % value
    if magnitude >= 1:
        return "%.2f" % value
    return "%.3g" % value


COLUMNS = ("phase", "measurement", "value", "unit", "per CPU-s", "target", "met")


def markdown_table(rows):
    lines = ["| %s |" % " | ".join(COLUMNS), "| %s |" % " | ".join("---" for _ in COLUMNS)]
    for row in rows:
        met = "" if row.met is None else ("yes" if row.met else "NO")
        per_cpu = "" if row.per_cpu is None else format_value(row.per_cpu)
        cells = (row.phase, row.what.replace("|", "/"), format_value(row.value), row.unit,
                 per_cpu, row.target, met)
        lines.append("| %s |" % " | ".join(cells))
    return "\n".join(lines)


def write_json(path, rows, meta, notes):
    """The rows, meta and notes as JSON, written atomically (a rerun never leaves half
    a file where a previous result was)."""
    payload = {"rows": [row.as_dict() for row in rows], "meta": meta, "notes": list(notes)}
    atomic.write_json(path, payload)
