"""Provenance of the HH → γγbb̄ chain: selection, histograms, limits and plots run through
the ``hepline`` command line (``hepline select|histograms|limits workspaces|limits limits|plots``)
on small inputs; every output carries a record naming the stage, the config hash, the seeds
and the inputs' identities, and two runs with the same config and seed give identical
histogram contents although their records differ."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot
import yaml

from analysis.cli import main as hepline
from analysis.core.config import config_hash, load_config
from analysis.core.provenance import PROVENANCE_KEY, file_identity, read_provenance, sidecar_path
from analysis.stats import histograms as H
from tests.analysis.stats.test_limits import SYSTS as LIMIT_SYSTS
from tests.analysis.stats.test_limits import histset as limits_histset
from tests.selections.hh_yybb.test_processor import WP_FILE_CONTENT, write_hepline_events

DEFAULT_SMEARING_SEED = 20211123  # selection.hh_yybb.systematics.photon_energy_resolution.seed
SEL_OUTPUTS = ("sel.pkl", "cutflow.json", "cutflow.md", "metrics.json")
HIST_OUTPUTS = ("hists.pkl", "hists.root", "cutflow.json", "cutflow.md")


def _run(monkeypatch: pytest.MonkeyPatch, argv: list[str], prog: str) -> None:
    """Run ``hepline <argv>`` (:func:`analysis.cli.main`) with ``sys.argv`` set as a real
    invocation would (the record's ``command``; ``prog`` tells runs apart), so two runs'
    records differ even within the same second."""
    monkeypatch.setattr(sys, "argv", [prog, *argv])
    assert hepline(argv) == 0


def _hist_arrays(histset: H.HistSet) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    return {(name, obs): (h.values(flow=True), h.variances(flow=True))
            for name, entry in histset.samples.items() for obs, h in entry.hists.items()}


def _assert_same_hists(a: H.HistSet, b: H.HistSet) -> None:
    ha, hb = _hist_arrays(a), _hist_arrays(b)
    assert ha.keys() == hb.keys() and ha
    for key, (va, wa) in ha.items():
        vb, wb = hb[key]
        assert np.array_equal(va, vb), key
        assert np.array_equal(wa, wb), key


# ---------------------------------------------------------------------------------------
# the chain, run once per module
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Selection (twice with the same config, once via ``hepline select --seed --workers``)
    and histograms (twice) on the constructed events of tests/selections/test_hh_yybb.py."""
    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("chain")
    events = write_hepline_events(base / "hhtest_0.root")
    wp = base / "working_points.json"
    wp.write_text(json.dumps(WP_FILE_CONTENT))
    cfg_path = base / "config.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "seed": 1, "runner": {"executor": "iterative"},
        "generation": {"samples": {"x300": {"process": "x_hh_yybb", "mass_gev": 300, "xsec_pb": 1.0,
                                            "shards": 1, "events_per_shard": 1}}},
        "limits": {"backgrounds": ["hhtest"]},
    }))
    out: dict[str, Any] = {"events": events, "wp": wp, "config": cfg_path, "base": base}
    try:
        for run in ("a", "b"):
            d = base / f"sel_{run}"
            argv = ["select", "--config", str(cfg_path), "--working-points", str(wp), "--output", str(d / "sel.pkl"),
                    "--cutflow-json", str(d / "cutflow.json"), "--cutflow-md", str(d / "cutflow.md"),
                    "--metrics", str(d / "metrics.json"), str(events)]
            _run(mp, argv, f"hepline[{run}]")
            out[f"sel_{run}"] = d
        d = base / "sel_c"
        argv = ["select", "--config", str(cfg_path), "--working-points", str(wp), "--output", str(d / "sel.pkl"),
                "--metrics", str(d / "metrics.json"), "--seed", "5", "--workers", "1", str(events)]
        _run(mp, argv, "hepline")
        out["sel_c"] = d
        for run in ("a", "b"):
            h = base / f"hists_{run}"
            _run(mp, ["histograms", "--config", str(cfg_path), "--output-dir", str(h), str(out["sel_a"] / "sel.pkl")],
                 f"hepline[{run}]")
            out[f"hists_{run}"] = h
    finally:
        mp.undo()
    return out


# ---------------------------------------------------------------------------------------
# selection
# ---------------------------------------------------------------------------------------
def test_selection_outputs_carry_the_select_record(chain: dict[str, Any]) -> None:
    cfg = load_config(chain["config"])
    for name in SEL_OUTPUTS:
        path = chain["sel_a"] / name
        assert sidecar_path(path).is_file(), name
        rec = read_provenance(path)
        assert rec["stage"] == "hh_yybb.select"
        assert rec["config_hash"] == config_hash(cfg)
        assert rec["seeds"] == {"smearing": DEFAULT_SMEARING_SEED}
        assert rec["inputs"] == [file_identity(chain["events"]), file_identity(chain["wp"])]
        with uproot.open(chain["events"]) as f:
            assert rec["inputs"][0]["uuid"] == str(f.file.uuid)
        assert rec["extra"] == {"format": "auto", "dataset": None}
    # one record for all outputs of a job
    assert len({json.dumps(read_provenance(chain["sel_a"] / n), sort_keys=True) for n in SEL_OUTPUTS}) == 1
    metrics = json.loads((chain["sel_a"] / "metrics.json").read_text())
    assert metrics["events"] > 0 and metrics["processor"] == "HHyybbProcessor"


def test_selection_runs_with_the_same_seed_agree(chain: dict[str, Any]) -> None:
    a, b = (H.HistSet.read(chain[f"sel_{r}"] / "sel.pkl") for r in ("a", "b"))
    _assert_same_hists(a, b)
    ra, rb = (read_provenance(chain[f"sel_{r}"] / "sel.pkl") for r in ("a", "b"))
    assert ra != rb and ra["command"] != rb["command"]
    assert ra["config_hash"] == rb["config_hash"] and ra["inputs"] == rb["inputs"]


def test_select_seed_and_workers_flags_reach_the_config(chain: dict[str, Any]) -> None:
    rec = read_provenance(chain["sel_c"] / "sel.pkl")
    assert rec["stage"] == "hh_yybb.select" and rec["seeds"] == {"smearing": 5}
    cfg = load_config(chain["config"]).to_dict()
    cfg["selection"]["hh_yybb"]["systematics"]["photon_energy_resolution"]["seed"] = 5
    cfg["runner"]["workers"] = 1
    assert rec["config_hash"] == config_hash(cfg)
    assert rec["config_hash"] != read_provenance(chain["sel_a"] / "sel.pkl")["config_hash"]
    assert read_provenance(chain["sel_c"] / "metrics.json") == rec
    assert json.loads((chain["sel_c"] / "metrics.json").read_text())["workers"] == 1
    # the seed reaches the smearing: it moves the photon-resolution variation, not nominal
    a, c = (H.HistSet.read(chain[f"sel_{r}"] / "sel.pkl").samples["hhtest"].hists["m_yy"]
            for r in ("a", "c"))
    assert np.array_equal(a[{"variation": "nominal"}].values(), c[{"variation": "nominal"}].values())
    up = {"variation": "photon_resolutionUp"}
    assert not np.array_equal(a[up].values(), c[up].values())


def test_select_override_is_validated(chain: dict[str, Any], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["select", "--config", str(chain["config"]), "--working-points", str(chain["wp"]),
            "--output", str(tmp_path / "x.pkl"), str(chain["events"])]
    assert hepline([*argv[:-1], "--set", "runner.workers=0", argv[-1]]) == 2
    assert "runner.workers" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the flag's own check
        hepline([*argv[:-1], "--workers", "0", argv[-1]])
    assert not (tmp_path / "x.pkl").exists()


# ---------------------------------------------------------------------------------------
# histograms
# ---------------------------------------------------------------------------------------
def test_histogram_outputs_carry_the_histograms_record(chain: dict[str, Any]) -> None:
    cfg = load_config(chain["config"])
    sel = chain["sel_a"] / "sel.pkl"
    for name in HIST_OUTPUTS:
        rec = read_provenance(chain["hists_a"] / name)
        assert rec["stage"] == "histograms"
        assert rec["config_hash"] == config_hash(cfg)
        assert rec["inputs"] == [file_identity(sel)]
        assert rec["inputs"][0]["sha256"]
        assert rec["extra"] == {"lumi_fb": 139.0}
    assert not sidecar_path(chain["hists_a"] / "hists.root").exists()  # ROOT: inside the file
    assert sidecar_path(chain["hists_a"] / "hists.pkl").is_file()


def test_histogram_root_file_keeps_its_th1_names(chain: dict[str, Any]) -> None:
    hs = H.HistSet.read(chain["hists_a"] / "hists.pkl")
    with uproot.open(chain["hists_a"] / "hists.root") as f:
        top = {k.split(";")[0] for k in f.keys(recursive=False)}
        assert top == {*hs.observables, PROVENANCE_KEY}
        assert f[PROVENANCE_KEY].classname == "TObjString"
        names = {k.split(";")[0] for k in f.keys(recursive=True)} - top
        expected = {f"{obs}/{H.root_name(r, s, v)}" for s, e in hs.samples.items() for obs in hs.observables
                    for r in e.hists[obs].axes["region"] for v in e.hists[obs].axes["variation"]}
        assert names == expected
        for name in names:  # every key but the provenance string is a TH1
            assert f[name].classname.startswith("TH1"), name
        h = hs.hist("hhtest", "m_yy", "diphoton")
        assert f["m_yy/diphoton_hhtest"].values() == pytest.approx(h.values())
        assert h.values().sum() > 0


def test_histogram_runs_agree_although_their_records_differ(chain: dict[str, Any]) -> None:
    a, b = (H.HistSet.read(chain[f"hists_{r}"] / "hists.pkl") for r in ("a", "b"))
    _assert_same_hists(a, b)
    assert json.loads((chain["hists_a"] / "cutflow.json").read_text()) == json.loads(
        (chain["hists_b"] / "cutflow.json").read_text())
    ra, rb = (read_provenance(chain[f"hists_{r}"] / "hists.root") for r in ("a", "b"))
    assert ra != rb and ra["inputs"] == rb["inputs"]
    with uproot.open(chain["hists_a"] / "hists.root") as fa, uproot.open(chain["hists_b"] / "hists.root") as fb:
        keys = [k for k in fa.keys(recursive=True, cycle=False) if "/" in k]
        assert keys and keys == [k for k in fb.keys(recursive=True, cycle=False) if "/" in k]
        for k in keys:
            assert np.array_equal(fa[k].values(flow=True), fb[k].values(flow=True)), k
            assert np.array_equal(fa[k].variances(flow=True), fb[k].variances(flow=True)), k


def test_writers_without_provenance_write_no_record(tmp_path: Path, chain: dict[str, Any]) -> None:
    hs = H.HistSet.read(chain["hists_a"] / "hists.pkl")
    hs.write(tmp_path / "h.pkl")
    hs.write_root(tmp_path / "h.root")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.pkl", "h.root"]
    with uproot.open(tmp_path / "h.root") as f:
        assert PROVENANCE_KEY not in f.keys(recursive=False, cycle=False)


# ---------------------------------------------------------------------------------------
# limits
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def limit_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``limits workspaces`` (pseudo-data seed 3) then ``limits limits`` on a two-mass grid."""
    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("limits")
    bkg = [("sr", v, [120.0, 125.0, 130.0], [k, k, k])
           for v, k in (("nominal", 20.0), ("jet_scaleUp", 21.0), ("jet_scaleDown", 19.0))]

    def sig(k: float) -> list[tuple[str, str, list[float], list[float]]]:
        return [("sr", v, [125.0], [k]) for v in ("nominal", "jet_scaleUp", "jet_scaleDown")]

    hists = limits_histset({"x300": sig(5.0), "x600": sig(20.0), "bkg": bkg}).write(base / "hists.pkl")
    cfg_path = base / "config.yaml"
    cfg_path.write_text(yaml.safe_dump({"seed": 1, "generation": {"samples": {
        "x300": {"process": "x_hh_yybb", "mass_gev": 300, "xsec_pb": 1.0, "shards": 1, "events_per_shard": 1},
        "x600": {"process": "x_hh_yybb", "mass_gev": 600, "xsec_pb": 2.0, "shards": 1, "events_per_shard": 1}}},
        "limits": {"backgrounds": ["bkg"], "systematics": LIMIT_SYSTS,
                   "resonant": {"signals": ["x300", "x600"], "observable": "m_yy", "rebin": 22,
                                "window_fraction": None, "mass_categories": [{"regions": ["sr"]}]}}}))
    ws, lim = base / "ws", base / "out"
    try:
        _run(mp, ["limits", "workspaces", "--config", str(cfg_path), "--hists", str(hists), "--output-dir", str(ws),
                  "--pseudo-data-seed", "3"], "hepline")
        _run(mp, ["limits", "limits", "--config", str(cfg_path), "--index", str(ws / "index.json"),
                  "--output-dir", str(lim)], "hepline")
    finally:
        mp.undo()
    return {"hists": hists, "config": cfg_path, "ws": ws, "out": lim}


def test_workspaces_record_the_pseudo_data_seed_and_the_histograms(limit_outputs: dict[str, Path]) -> None:
    cfg = load_config(limit_outputs["config"])
    for name in ("x300.json", "x600.json", "index.json"):
        rec = read_provenance(limit_outputs["ws"] / name)
        assert rec["stage"] == "limits.workspaces"
        assert rec["config_hash"] == config_hash(cfg)
        assert rec["seeds"] == {"pseudo_data": 3}
        assert rec["inputs"] == [file_identity(limit_outputs["hists"])]


def test_limit_outputs_record_the_index_and_its_workspaces(limit_outputs: dict[str, Path]) -> None:
    cfg = load_config(limit_outputs["config"])
    ws = limit_outputs["ws"]
    expected = [file_identity(ws / n) for n in ("index.json", "x300.json", "x600.json")]
    for name in ("limits.json", "limits.md"):  # (the Brazil plot is the plots step's: below)
        rec = read_provenance(limit_outputs["out"] / name)
        assert rec["stage"] == "limits"
        assert rec["config_hash"] == config_hash(cfg)
        assert rec["inputs"] == expected
    rows = json.loads((limit_outputs["out"] / "limits.json").read_text())["rows"]
    assert [r["mass_gev"] for r in rows] == [300.0, 600.0]
    assert all(r["mu"]["observed"] is not None for r in rows)  # the pseudo-data seed was used


# ---------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------
def test_every_plot_and_the_summary_carry_the_plots_record(chain: dict[str, Any], limit_outputs: dict[str, Path],
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hists = chain["hists_a"] / "hists.pkl"
    limits = limit_outputs["out"] / "limits.json"
    out = tmp_path / "plots"
    _run(monkeypatch, ["plots", "--config", str(chain["config"]), "--hists", str(hists), "--limits", str(limits),
                       "--output-dir", str(out)], "hepline")
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert {"m_yy_categories.png", "m_star.png", "cutflow.png", "brazil.png"} <= set(pngs)
    cfg = load_config(chain["config"])
    for name in [*pngs, "summary.json"]:
        rec = read_provenance(out / name)
        assert rec["stage"] == "plots"
        assert rec["config_hash"] == config_hash(cfg)
        assert rec["inputs"] == [file_identity(hists), file_identity(limits)]
    # nothing else in the folder: every output has its sidecar, no temporary is left
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [n for x in [*pngs, "summary.json"] for n in (x, x + ".provenance.json")])
