"""Reading ``torch.save`` files without torch: both formats, every dtype the fixtures hold,
views sharing a storage, and the refusals (damaged files, and pickles that name globals
this reader must never execute). Fixtures: tests/fixtures/make_torch_hourglass_fixtures.py.
"""
import os
import pickle
import zipfile

import numpy as np
import pytest

from hgpipe.interop.torch_file import TorchFileError, read_torch_file

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "torch")


@pytest.mark.parametrize("name", ["tensors.zip.pt", "tensors.legacy.pt"])
def test_both_formats_give_torchs_values(name):
    obj = read_torch_file(os.path.join(FIXTURES, name))
    expected = np.load(os.path.join(FIXTURES, "tensors.npz"))
    assert sorted(obj) == ["nested", "number", "tensors"]
    assert obj["number"] == 2.5 and obj["nested"][1] == ("text", 3)
    assert sorted(obj["tensors"]) == sorted(expected.files)
    for key in expected.files:
        got = obj["tensors"][key]
        assert got.shape == expected[key].shape, key
        assert got.dtype == expected[key].dtype, key  # bfloat16 comes back as float32
        np.testing.assert_array_equal(got, expected[key], err_msg=key)
    # the transposed view and the row slice were rebuilt from strides / offsets
    assert obj["tensors"]["transposed"].shape == (6, 4)
    np.testing.assert_array_equal(obj["tensors"]["transposed"].T[1:3],
                                  obj["tensors"]["row_slice"])
    np.testing.assert_array_equal(obj["nested"][0], obj["tensors"]["float32"])


def _torch_zip(tmp_path, payload, records=None, name="bad.pt"):
    """A zip laid out as torch.save writes it, with any pickle payload."""
    path = str(tmp_path / name)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        for record, data in (records or {}).items():
            archive.writestr("archive/" + record, data)
    return path


class _Exploit(object):
    """Pickles as a call to os.system: what a hostile checkpoint would hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch %s" % self.marker,))


def test_unknown_globals_are_refused_never_called(tmp_path):
    marker = str(tmp_path / "executed")
    payload = pickle.dumps({"state_dict": {}, "hook": _Exploit(marker)}, protocol=2)
    path = _torch_zip(tmp_path, payload)
    with pytest.raises(TorchFileError) as info:
        read_torch_file(path)
    assert not os.path.exists(marker)
    assert str(info.value).startswith(path + ": ")
    assert "names %s.system" % os.system.__module__ in str(info.value)


def test_damaged_files_are_refused_in_one_line(tmp_path):
    def refusal(path):
        with pytest.raises(TorchFileError) as info:
            read_torch_file(path)
        message = str(info.value)
        assert message.startswith(path + ": ") and "\n" not in message
        return message

    assert "cannot read" in refusal(str(tmp_path / "absent.pt"))
    text = tmp_path / "text.pt"
    text.write_bytes(b"just some text, not a checkpoint\n")
    assert "not a readable PyTorch checkpoint" in refusal(str(text))

    legacy = open(os.path.join(FIXTURES, "tensors.legacy.pt"), "rb").read()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(legacy[:-10])
    assert "file ends" in refusal(str(cut))

    zipped = zipfile.ZipFile(os.path.join(FIXTURES, "tensors.zip.pt"))
    names = zipped.namelist()
    pkl = [n for n in names if n.endswith("data.pkl")][0]
    storage = [n for n in names if "/data/" in n][0]
    missing = _torch_zip(tmp_path, zipped.read(pkl),
                         {n.split("/", 1)[1]: zipped.read(n) for n in names
                          if n not in (pkl, storage)}, name="missing.pt")
    assert "storage record" in refusal(missing)

    no_pickle = str(tmp_path / "other.zip")
    with zipfile.ZipFile(no_pickle, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert "data.pkl" in refusal(no_pickle)

    # storages cut to 8 bytes: smaller than their tensors declare, refused before reading
    short = _torch_zip(tmp_path, zipped.read(pkl), {
        n.split("/", 1)[1]: (zipped.read(n)[:8] if "/data/" in n else zipped.read(n))
        for n in names if n != pkl}, name="short.pt")
    assert "holds 8 bytes, its tensors say" in refusal(short)
