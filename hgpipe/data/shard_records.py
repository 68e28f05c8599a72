"""What prepare itself wrote into a shards folder, so that a rerun never blesses anything else.

Every shard gets a record (file, checksum, size, plan fingerprint) in ``OUT/.records/``,
written *before* the shard is renamed to its final name: a shard with a final name always
has its record. A rerun counts an existing shard as complete only if it still matches
its record (or the manifest's entry) byte for byte; a damaged shard is rebuilt, never
copied into the new manifest with its damaged checksum.

Also here: removing what interrupted runs leave (hidden ``.tmp`` files) and, with
``--overwrite``, the shards of an older config that the new plan does not list.
"""
import json
import os
import re

from hgpipe import atomic
from hgpipe.data import shard_checks, shards

RECORDS_DIR = ".records"
_SHARD_FILE = re.compile(r"^(train|val)-\d+\.h5$")
_TEMPORARY = re.compile(r"^\..+\.tmp$")  # hgpipe.atomic's temporary names


def _record_path(out_dir, file_name):
    return os.path.join(out_dir, RECORDS_DIR, file_name + ".json")


def write_record(out_dir, file_name, digest, size, fingerprint):
    atomic.write_json(_record_path(out_dir, file_name), {
        "file": file_name, shards.CHECKSUM_KEY: digest, "bytes": int(size),
        "fingerprint": fingerprint})


def read_record(out_dir, file_name):
    try:
        with open(_record_path(out_dir, file_name)) as handle:
            record = json.load(handle)
    except (IOError, OSError, ValueError, RecursionError):
        return None
    return record if shard_checks.check_record(record) else None   # else: rebuilt


def previous_manifest(out_dir):
    """The manifest a previous complete run left, or None."""
    try:
        return shards.load_manifest(out_dir)
    except shards.ShardError:
        return None


def find_record(out_dir, file_name, manifest=None):
    """What prepare wrote as ``file_name``: its record here, else the entry of
    ``manifest`` (a previous complete run's), else None."""
    record = read_record(out_dir, file_name)
    if record is None and manifest is not None:
        record = next((e for e in manifest.get("shards", []) if e["file"] == file_name),
                      None)
    return record


def remove_leftovers(out_dir):
    """Delete hidden temporary files of interrupted runs; returns how many.

    Only called while holding the folder's lock, so no writer is using them.
    """
    removed = 0
    for folder in (out_dir, os.path.join(out_dir, RECORDS_DIR)):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if _TEMPORARY.match(name):
                os.remove(os.path.join(folder, name))
                removed += 1
    return removed


def remove_other_shards(out_dir, planned_files):
    """Delete shard files (and records) that the plan does not list; returns their names."""
    removed = []
    for name in sorted(os.listdir(out_dir)):
        if _SHARD_FILE.match(name) and name not in planned_files:
            os.remove(os.path.join(out_dir, name))
            removed.append(name)
            record = _record_path(out_dir, name)
            if os.path.exists(record):
                os.remove(record)
    return removed
