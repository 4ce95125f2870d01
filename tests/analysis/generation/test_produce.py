"""Shard production: reproducibility, metadata, event numbering, merging, atomic writes."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.core.config import ConfigError, config_hash
from analysis.core.errors import InputError
from analysis.generation.produce import (
    MergedSample,
    ShardResult,
    merge_metadata,
    produce_shard,
    write_merged,
)
from analysis.generation.writer import NtupleWriter


def _arrays(path):  # type: ignore[no-untyped-def]
    with uproot.open(path) as f:
        return f["Events"].arrays()


def _trees(path):  # type: ignore[no-untyped-def]
    with uproot.open(path) as f:
        return {t: f[t].arrays() for t in ("Events", "Runs")}, json.loads(str(f["hepline_metadata"]))


def test_same_config_and_seed_give_identical_arrays(tmp_path, config) -> None:  # type: ignore[no-untyped-def]
    a, b = tmp_path / "a.root", tmp_path / "b.root"
    produce_shard(config, "ttbar", 1, a, n_events=30, progress=False)
    produce_shard(config, "ttbar", 1, b, n_events=30, progress=False)
    (ta, ma), (tb, mb) = _trees(a), _trees(b)
    for tree in ("Events", "Runs"):
        ea, eb = ta[tree], tb[tree]
        assert ea.fields == eb.fields and len(ea) == len(eb) > 0
        for f in ea.fields:
            # bitwise: same layout, same dtype, same values (NaN in the same places)
            assert ak.array_equal(ea[f], eb[f], equal_nan=True, dtype_exact=True), (tree, f)
    ma.pop("created_utc"), mb.pop("created_utc")
    assert ma == mb
    # another shard is another random stream
    c = tmp_path / "c.root"
    produce_shard(config, "ttbar", 0, c, n_events=30, progress=False)
    assert not np.array_equal(ak.to_numpy(ak.num(_arrays(c).Track_pt)), ak.to_numpy(ak.num(ta["Events"].Track_pt)))
    # another base seed too
    d = tmp_path / "d.root"
    produce_shard(config.replace(seed=config.seed + 1), "ttbar", 1, d, n_events=30, progress=False)
    assert not np.array_equal(ak.to_numpy(_arrays(d).Track_pt[0]), ak.to_numpy(ta["Events"].Track_pt[0]))


def test_result_is_typed_and_equals_the_stored_metadata(tmp_path, config) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "yy.root"
    metrics = tmp_path / "yy_metrics.json"
    result = produce_shard(config, "yy", 0, out, n_events=12, progress=False, metrics=metrics)
    assert isinstance(result, ShardResult) and result.output == out
    with uproot.open(out) as f:
        stored = json.loads(str(f["hepline_metadata"]))
    assert result.metadata.to_dict() == stored
    assert result.metadata.n_events == result.metrics.events == 12
    assert result.metadata.sumw == pytest.approx(12.0) and result.metadata.detector == config.detector
    # the stored hash is that of the plain generation/detector sections and the seed
    assert stored["config_hash"] == config_hash({
        "generation": config.generation.to_dict(), "detector": config.detector.to_dict(), "seed": config.seed})
    assert json.loads(metrics.read_text()) == result.metrics.to_dict()
    assert result.metrics.bytes == out.stat().st_size
    assert result.metrics.bytes_per_event == pytest.approx(out.stat().st_size / 12)
    # Pythia only: nothing written, no Σw, no size
    gen_only = produce_shard(config, "yy", 0, tmp_path / "none.root", n_events=5, detector=False,
                             progress=False)
    assert not (tmp_path / "none.root").exists() and gen_only.output is None
    assert gen_only.metadata.sumw is None and "sumw" not in gen_only.metadata.to_dict()
    assert gen_only.metrics.bytes is None and "bytes_per_event" not in gen_only.metrics.to_dict()


def test_metadata_runs_tree_and_event_ids(ttbar_file) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import N_TTBAR

    with uproot.open(ttbar_file) as f:
        meta = json.loads(str(f["hepline_metadata"]))
        runs = f["Runs"].arrays()
        ev = f["Events"].arrays(["run", "luminosityBlock", "event", "genWeight"])
        assert f["Events"].title is not None and f["Events"].classname == "TTree"
    assert meta["sample"] == "ttbar" and meta["n_events"] == N_TTBAR
    assert 300 < meta["xsec_pb"] < 800  # LO ttbar at 13 TeV, about 500 pb
    assert meta["sumw"] == pytest.approx(float(ak.sum(ev.genWeight)))
    assert runs.genEventSumw[0] == pytest.approx(meta["sumw"])
    assert runs.genEventCount[0] == N_TTBAR
    assert len(np.unique(ak.to_numpy(ev.event))) == N_TTBAR
    assert set(ak.to_numpy(ev.run).tolist()) == {410470}
    for key in ("seed", "config_hash", "hepline_version", "pythia_settings", "detector", "process"):
        assert key in meta


def test_merge_combines_shards(tmp_path, config) -> None:  # type: ignore[no-untyped-def]
    paths = []
    for shard in (0, 1):
        p = tmp_path / f"s{shard}.root"
        produce_shard(config, "ttbar", shard, p, n_events=20, progress=False)
        paths.append(p)
    merged = merge_metadata(paths)
    assert isinstance(merged, MergedSample)
    assert merged.n_events == 40 and merged.sumw == pytest.approx(40.0)
    assert merged.shards == (0, 1) and merged.xsec_pb > 0
    written = write_merged(paths, tmp_path / "ttbar.json")
    assert json.loads((tmp_path / "ttbar.json").read_text()) == written.to_dict() == merged.to_dict()
    assert written.to_dict()["files"] == [str(p) for p in paths]
    with pytest.raises(InputError, match="several samples"):
        other = tmp_path / "x.root"
        produce_shard(config, "yy", 0, other, n_events=5, progress=False)
        merge_metadata([paths[0], other])


def test_writer_leaves_no_file_when_interrupted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out.root"
    block = {"genWeight": np.ones(3, dtype=np.float32), "event": np.arange(3, dtype=np.uint64)}
    with pytest.raises(KeyboardInterrupt):
        with NtupleWriter(out) as w:
            w.write(block)
            raise KeyboardInterrupt
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too
    with pytest.raises(RuntimeError, match="without finish"):
        with NtupleWriter(out) as w:
            w.write(block)
    assert not out.exists()
    with pytest.raises(ValueError, match="no events"):
        with NtupleWriter(out) as w:
            w.finish({})
    assert not out.exists()


def test_unknown_sample_and_shard_are_rejected(config) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="nosuch"):
        produce_shard(config, "nosuch", 0, None, progress=False)
    with pytest.raises(ConfigError, match="out of range"):
        produce_shard(config, "ttbar", 99, None, progress=False)


def test_generated_file_matches_the_format_tables(ttbar_file) -> None:  # type: ignore[no-untyped-def]
    """The generator writes exactly the branches and dtypes of analysis.core.format (and the doc)."""
    from analysis.core.format import HEPLINE_COLLECTIONS, HEPLINE_EVENT_BRANCHES, HEPLINE_VERTICES

    expected = dict(HEPLINE_EVENT_BRANCHES)
    for name, fields in HEPLINE_VERTICES.items():
        expected.update({f"{name}_{f}": t for f, t in fields.items()})
    for name, fields in HEPLINE_COLLECTIONS.items():
        expected.update({f"{name}_{f}": t for f, t in fields.items()})
    with uproot.open(ttbar_file) as f:
        tree = f["Events"]
        got = {
            b.name: np.dtype(b.interpretation.content.from_dtype if hasattr(b.interpretation, "content")
                             else b.interpretation.from_dtype).newbyteorder("=").name
            for b in tree.branches if not b.name.startswith("n")
        }
        counters = {b.name for b in tree.branches if b.name.startswith("n")}
    assert got == {k: np.dtype(v).name for k, v in expected.items()}
    assert counters == {f"n{name}" for name in HEPLINE_COLLECTIONS}


def test_generated_file_reads_through_nanoevents_with_jet_tracks(ttbar_file) -> None:  # type: ignore[no-untyped-def]
    from analysis.io.ingest import open_events

    events = open_events(ttbar_file, mode="eager")
    jets = events.Jet
    # Jet.tracks is the inverse of Track_jetIdx
    n_from_link = ak.num(jets.tracks, axis=2)
    assert ak.all(n_from_link == jets.nTrack)
    trk = jets.tracks
    assert ak.all(ak.flatten(trk.jetIdx, axis=None) >= 0)
    assert events.metadata["sample"] == "ttbar"


def test_writer_buffers_batches_into_baskets(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "b.root"
    with NtupleWriter(out, basket_events=7) as w:
        for k in range(5):  # 5 batches of 3 events: flush at 9 pending, then 6 at finish
            jets = ak.Array([[float(k)], [], [float(k), 2.0]])
            w.write({"event": np.arange(3 * k, 3 * k + 3, dtype=np.uint64),
                     "genWeight": np.ones(3, dtype=np.float32), "Jet": ak.zip({"pt": jets})})
        w.finish({"sample": "t"})
    with uproot.open(out) as f:
        tree = f["Events"]
        assert tree.num_entries == 15
        assert tree["event"].num_baskets == 2
        assert ak.to_list(tree["event"].array()) == list(range(15))
        assert ak.to_list(tree["nJet"].array()) == [1, 0, 2] * 5


def test_event_scale_multiplies_events_per_shard(tmp_path, config) -> None:  # type: ignore[no-untyped-def]
    gen = config.generation
    samples = {**gen.samples, "yy": gen.samples["yy"].replace(events_per_shard=6)}
    cfg = config.replace(generation=gen.replace(samples=samples, event_scale=2.5))
    produce_shard(cfg, "yy", 0, tmp_path / "yy.root", progress=False)
    with uproot.open(tmp_path / "yy.root") as f:
        assert f["Events"].num_entries == 15
        assert json.loads(str(f["hepline_metadata"]))["n_events"] == 15
