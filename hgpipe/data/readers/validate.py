"""Sorting records into usable ones and skipped ones, for the prepare step's summary."""
from collections import Counter


def validate_records(records):
    """Split records by PersonRecord.problem(): returns (good, [(record, reason), ...])."""
    good, skipped = [], []
    for record in records:
        reason = record.problem()
        if reason is None:
            good.append(record)
        else:
            skipped.append((record, reason))
    return good, skipped


def summarize_skipped(skipped, examples=3):
    """One line per distinct reason with its count and a few example persons."""
    by_reason = Counter(reason for _record, reason in skipped)
    lines = []
    for reason, count in by_reason.most_common():
        who = [r.describe() for r, why in skipped if why == reason][:examples]
        lines.append("%d skipped: %s (e.g. %s)" % (count, reason, "; ".join(who)))
    return lines
