"""analysis.core.provenance: the record, input identities, and storage in ROOT, HDF5 and sidecars."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import h5py
import hist
import numpy as np
import pytest
import uproot

import analysis
from analysis.core.atomic import atomic_path, attach_provenance, write_json
from analysis.core.config import config_hash
from tests.fixtures.files import write_hepline_fixture
from analysis.io.ingest import detect_format, read_metadata
from analysis.core.provenance import (
    PROVENANCE_KEY,
    ProvenanceError,
    file_identity,
    git_info,
    provenance_record,
    read_provenance,
    sidecar_path,
)


def _record(stage: str = "test", **kw):  # type: ignore[no-untyped-def]
    return provenance_record(stage=stage, config={"seed": 3, "x": [1, 2]}, seeds={"base": 3}, **kw)


def test_record_contents(tmp_path: Path) -> None:
    inp = tmp_path / "in.txt"
    inp.write_text("data")
    rec = _record(inputs=[inp], extra={"sample": "s"})
    assert rec["stage"] == "test"
    assert rec["hepline_version"] == analysis.__version__
    assert rec["config_hash"] == config_hash({"seed": 3, "x": [1, 2]})
    assert rec["seeds"] == {"base": 3}
    assert rec["extra"] == {"sample": "s"}
    assert {"python", "numpy", "awkward", "uproot", "coffea", "hist"} <= set(rec["packages"])
    assert rec["packages"]["numpy"] == np.__version__
    assert isinstance(rec["command"], list) and rec["host"]
    created = dt.datetime.fromisoformat(rec["created_utc"])
    assert created.utcoffset() == dt.timedelta(0)
    assert rec["inputs"] == [file_identity(inp)]
    git = rec["git"]
    assert git is None or len(git["commit"]) == 40
    json.dumps(rec)  # serialisable as is


def test_git_info_outside_a_checkout_is_none(tmp_path: Path) -> None:
    assert git_info(str(tmp_path)) is None


def test_input_identities_change_with_the_input(tmp_path: Path) -> None:
    root = write_hepline_fixture(tmp_path / "a.root", 10, np.random.default_rng(1))
    first = file_identity(root)
    assert first["kind"] == "root" and first["size"] == root.stat().st_size
    with uproot.open(root) as f:
        assert first["uuid"] == str(f.file.uuid)
    write_hepline_fixture(root, 10, np.random.default_rng(1))  # same content, a new write
    assert file_identity(root)["uuid"] != first["uuid"]

    txt = tmp_path / "cuts.json"
    txt.write_text('{"a": 1}')
    a = file_identity(txt)
    txt.write_text('{"a": 2}')
    b = file_identity(txt)
    assert a["kind"] == "file" and a["sha256"] != b["sha256"] and a["size"] == b["size"]

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "m.pt").write_bytes(b"1")
    d1 = file_identity(folder)
    (folder / "m.pt").write_bytes(b"2")
    assert file_identity(folder)["sha256"] != d1["sha256"]
    with pytest.raises(FileNotFoundError, match="nope.root"):
        file_identity(tmp_path / "nope.root")


def test_json_sidecar_round_trip_keeps_the_output_bytes(tmp_path: Path) -> None:
    rec = _record()
    plain, with_prov = tmp_path / "plain.json", tmp_path / "summary.json"
    write_json(plain, {"auc": 0.9})
    write_json(with_prov, {"auc": 0.9}, provenance=rec)
    assert with_prov.read_bytes() == plain.read_bytes()
    assert sidecar_path(with_prov) == tmp_path / "summary.json.provenance.json"
    assert read_provenance(with_prov) == rec
    with pytest.raises(ProvenanceError, match="plain.json"):
        read_provenance(plain)
    assert attach_provenance(plain, rec) == sidecar_path(plain)
    assert read_provenance(plain)["stage"] == "test"


def test_hdf5_round_trip(tmp_path: Path) -> None:
    rec = _record()
    path = tmp_path / "table.h5"
    with atomic_path(path, provenance=rec) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("x", data=np.arange(5))
    assert read_provenance(path) == rec
    assert not sidecar_path(path).exists()
    with h5py.File(path) as f:
        assert json.loads(f.attrs["provenance"]) == rec
        assert np.array_equal(f["x"][:], np.arange(5))
    other = tmp_path / "bare.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("y", data=np.ones(3))
    with pytest.raises(ProvenanceError, match="bare.h5"):
        read_provenance(other)
    attach_provenance(other, _record("later"))
    assert read_provenance(other)["stage"] == "later"
    with h5py.File(other) as f:
        assert np.array_equal(f["y"][:], np.ones(3))


def test_root_round_trip_on_an_ntuple(tmp_path: Path) -> None:
    ntuple = write_hepline_fixture(tmp_path / "n.root", 15, np.random.default_rng(2), sample="sig")
    with pytest.raises(ProvenanceError, match=f"n.root.*{PROVENANCE_KEY}"):
        read_provenance(ntuple)
    with uproot.open(ntuple) as f:
        before = f["Events"].arrays(library="np")
    rec = _record(inputs=[])
    assert attach_provenance(ntuple, rec) == ntuple
    assert read_provenance(ntuple) == rec
    assert detect_format(ntuple) == "hepline"
    assert read_metadata(ntuple)["sample"] == "sig"
    with uproot.open(ntuple) as f:
        assert f.classname_of(PROVENANCE_KEY) == "TObjString"
        after = f["Events"].arrays(library="np")
    assert before.keys() == after.keys()
    for k in before:
        assert all(np.array_equal(a, b) for a, b in zip(before[k], after[k], strict=True)), k


def test_histogram_contents_do_not_depend_on_the_provenance(tmp_path: Path) -> None:
    """Timestamps live in the record only: histograms of two runs stay identical."""
    from analysis.validation import write_root

    h = hist.Hist(hist.axis.Regular(4, 0, 4, name="m_yy"), storage=hist.storage.Weight())
    h.fill(m_yy=[0.5, 1.5, 1.5, 3.5], weight=[1.0, 2.0, 0.5, 1.0])
    a, b = tmp_path / "a.root", tmp_path / "b.root"
    write_root(a, {"m_yy": h}, provenance=_record("run1"))
    write_root(b, {"m_yy": h}, provenance={**_record("run2"), "created_utc": "2000-01-01T00:00:00"})
    with uproot.open(a) as fa, uproot.open(b) as fb:
        assert np.array_equal(fa["m_yy"].values(), fb["m_yy"].values())
        assert np.array_equal(fa["m_yy"].variances(), fb["m_yy"].variances())
    assert read_provenance(a)["stage"] == "run1" and read_provenance(b)["stage"] == "run2"


def test_failed_write_leaves_neither_output_nor_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(path, provenance=_record()) as tmp:
        tmp.write_text("{}")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_missing_and_corrupt_records(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.json"):
        read_provenance(tmp_path / "absent.json")
    with pytest.raises(FileNotFoundError, match="absent.root"):
        attach_provenance(tmp_path / "absent.root", _record())
    out = tmp_path / "plot.png"
    out.write_bytes(b"\x89PNG")
    sidecar_path(out).write_text("{broken")
    with pytest.raises(ProvenanceError, match="plot.png.*not valid JSON"):
        read_provenance(out)
    shutil.copy(out, tmp_path / "copy.png")
    with pytest.raises(ProvenanceError, match="copy.png"):
        read_provenance(tmp_path / "copy.png")


def test_attach_provenance_to_a_root_file_with_folders(tmp_path):
    """uproot 5.7 raises on ``key in file`` for files with folders: attaching must still work,
    twice (the second record replaces the first)."""
    import numpy as np
    import uproot

    from analysis.core.provenance import provenance_record, read_provenance

    path = tmp_path / "hists.root"
    with uproot.recreate(path) as f:
        f["m_yy/sr_sig"] = np.histogram([1.0, 2.0], bins=3)
    for stage in ("first", "second"):
        attach_provenance(path, provenance_record(stage=stage))
    assert read_provenance(path)["stage"] == "second"
    with uproot.open(path) as f:
        assert f["m_yy/sr_sig"].values().sum() == 2


def test_a_fifo_input_is_an_error_not_a_hang(tmp_path) -> None:
    """Hashing a FIFO for the provenance would block forever (issue 21): it is refused."""
    import os

    import pytest

    from analysis.core.errors import InputFileError
    from analysis.core.provenance import file_identity

    fifo = tmp_path / "pipe.root"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="not a regular file"):
        file_identity(fifo)
