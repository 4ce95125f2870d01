"""hadd for hepline ntuples: content, metadata, refusals, atomic output."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.io import ingest
from analysis.core.format import HEPLINE_METADATA_KEY
from analysis.cli import main as hepline
from analysis.core.errors import InputError, InputFileError
from analysis.generation.hadd import MergedNtuple, hadd


def _events(path):
    with uproot.open(path) as f:
        return f["Events"].arrays()


def test_concatenates_events_runs_and_metadata(hepline_sample_files, tmp_path):
    sig = [str(p) for p in hepline_sample_files[:2]]
    out = tmp_path / "sig_merged.root"
    result = hadd(sig, out, basket_events=10)
    assert isinstance(result, MergedNtuple)
    assert result.output == out and result.inputs == tuple(sig) and result.n_events == 55
    meta = result.metadata

    merged = _events(out)
    parts = [_events(p) for p in sig]
    assert len(merged) == 30 + 25
    assert sorted(merged.fields) == sorted(parts[0].fields)
    for field in parts[0].fields:
        expected = ak.concatenate([p[field] for p in parts])
        assert ak.array_equal(merged[field], expected, equal_nan=True), field

    inputs = [ingest.read_metadata(p) for p in sig]
    assert meta["n_events"] == 55
    assert meta["sumw"] == pytest.approx(sum(m["sumw"] for m in inputs))
    assert meta["sample"] == "sig" and meta["merged_from"] == sig
    read_back = ingest.read_metadata(out)
    assert read_back["n_events"] == 55
    assert read_back["runs"]["genEventCount"] == sum(m["runs"]["genEventCount"] for m in inputs)
    with uproot.open(out) as f:
        assert f["Runs"].num_entries == 2
        assert f["Events"]["genWeight"].num_baskets == 3 + 3  # per input: ceil(n / 10)
        assert json.loads(str(f[HEPLINE_METADATA_KEY]))["shards"] == [0, 1]
    ingest.validate_file(out)  # a valid hepline ntuple for the readers


def test_refuses_another_sample_and_writes_nothing(hepline_sample_files, tmp_path):
    out = tmp_path / "mixed.root"
    with pytest.raises(InputFileError, match=r"bkg_0\.root.*'sample'"):
        hadd([str(p) for p in hepline_sample_files], out)
    assert not out.exists()
    assert not list(tmp_path.iterdir())


def test_refuses_different_branches(hepline_sample_files, tmp_path):
    src = str(hepline_sample_files[1])
    other = tmp_path / "sig_1_fewer.root"
    with uproot.open(src) as f:
        arrays = f["Events"].arrays(filter_name=["genWeight", "event", "run", "luminosityBlock"])
        meta = str(f[HEPLINE_METADATA_KEY])
    with uproot.recreate(other) as f:
        f["Events"] = {k: np.asarray(arrays[k]) for k in arrays.fields}
        f[HEPLINE_METADATA_KEY] = meta
    out = tmp_path / "out.root"
    with pytest.raises(InputFileError, match=r"sig_1_fewer\.root: branches differ"):
        hadd([str(hepline_sample_files[0]), str(other)], out)
    assert not out.exists()


def test_refuses_output_among_inputs_and_non_hepline_files(hepline_sample_files, nanoaod_file, tmp_path):
    sig0 = str(hepline_sample_files[0])
    with pytest.raises(InputError, match="also an input"):
        hadd([sig0], sig0)
    with pytest.raises(InputFileError, match=r"nanoaod\.root: not a hepline ntuple"):
        hadd([sig0, str(nanoaod_file)], tmp_path / "x.root")


def test_cli(hepline_sample_files, tmp_path):
    out = tmp_path / "cli.root"
    assert hepline(["hadd", "--output", str(out), *map(str, hepline_sample_files[:2])]) == 0
    assert len(_events(out)) == 55
