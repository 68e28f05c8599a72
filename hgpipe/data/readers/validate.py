"""Sorting records into usable ones and skipped ones, each with its reason."""


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

