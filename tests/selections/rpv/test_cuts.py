"""The cut-based RPV multijet selection on constructed jets and towers with known answers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from analysis.cli import main
from analysis.core.config import ConfigError, RpvConfig
from analysis.core.provenance import file_identity, read_provenance
from selections.rpv.cuts import (
    COLUMNS,
    CUTFLOW,
    SelectionInputError,
    event_variables,
    large_r_jets,
    rates,
    read_table,
    run_selection,
    select,
    stage_statistics,
    table_rates,
    weighted_efficiency,
    write_table,
)
from selections.rpv.samples import SampleInputError, sample_normalisation
from tests.fixtures.paths import DEFAULT_CONFIG

CFG = RpvConfig.default()
CUTS = CFG.cuts


def _jets(events: list[list[tuple[float, float, float]]]) -> SimpleNamespace:
    """Event-sorted, pT-ordered jets from per-event lists of (pt, eta, mass)."""
    ev, pt, eta, mass = [], [], [], []
    for i, jets in enumerate(events):
        for p, e, m in sorted(jets, key=lambda j: -j[0]):
            ev.append(i), pt.append(p), eta.append(e), mass.append(m)
    return SimpleNamespace(event=np.array(ev, int), pt=np.array(pt), eta=np.array(eta), mass=np.array(mass))


def test_cuts_on_constructed_jets() -> None:
    events = [
        [(500, 0.1, 250), (400, -0.5, 200), (300, 0.3, 200), (250, 1.0, 200)],   # 4j, M_J 850: SR
        [(500, 0.1, 250), (400, -0.5, 200), (300, 0.3, 200), (250, 1.0, 140)],   # 4j, M_J 790: fails
        [(500, 0.1, 200), (400, -0.5, 150), (300, 0.3, 150), (250, 1.0, 110), (210, 0.0, 50)],  # 5j, 610: SR
        [(500, 0.1, 250), (400, -1.5, 200), (300, 0.3, 200), (250, 1.0, 200)],   # |deta12| = 1.6: fails
        [(430, 0.1, 250), (400, -0.5, 200), (300, 0.3, 200), (250, 1.0, 200)],   # leading 430: no presel
        [(900, 0.1, 400), (800, 0.2, 400)],                                      # 2 jets: nothing
        [(500, 0.1, 250), (400, -0.5, 200), (300, 0.3, 200)],                    # 3 jets: presel only
        [],                                                                      # no jets
        [(500, 0.1, 150), (400, -0.5, 150), (300, 0.3, 150), (250, 1.0, 100), (210, 0.0, 100)],  # 5j, 550
    ]
    var = event_variables(_jets(events), len(events), CUTS)
    assert var.sr.tolist() == [True, False, True, False, False, False, False, False, False]
    assert var.presel.tolist() == [True, True, True, True, False, False, True, False, True]
    assert var.n_jets.tolist() == [4, 4, 5, 4, 4, 2, 3, 0, 5]
    np.testing.assert_allclose(var.mj[[0, 1, 2, 8]], [850, 790, 610, 550])  # 4 leading masses only
    np.testing.assert_allclose(var.deta12[[0, 3]], [0.6, 1.6])
    assert np.isnan(var.deta12[7]) and var.lead_pt[7] == 0
    flow = var.cutflow
    assert tuple(flow) == CUTFLOW
    assert [int(flow[k].sum()) for k in flow] == [9, 7, 6, 5, 4, 2]


def _cluster(eta: float, phi: float, e1: float, e2: float, dphi: float = 0.3):
    """Two massless towers at (eta, phi ± dphi/2) with energies e1, e2 (all EM)."""
    return [(eta, phi - dphi / 2, e1), (eta, phi + dphi / 2, e2)]


def _towers(events):
    ev, eta, phi, e = [], [], [], []
    for i, towers in enumerate(events):
        for t in towers:
            ev.append(i), eta.append(t[0]), phi.append(t[1]), e.append(t[2])
    e = np.array(e)
    return np.array(ev), np.array(eta), np.array(phi), 0.5 * e, 0.5 * e


def test_large_r_jets_from_constructed_towers() -> None:
    # one 2-tower jet at eta 0: m^2 = 2 E1 E2 (1 - cos dphi); a jet at eta 2.3 and a 150 GeV one are cut
    events = [_cluster(0.0, 1.0, 400.0, 300.0) + _cluster(2.3, -2.0, 600.0, 600.0) + _cluster(-1.0, -1.0, 80, 70)]
    ev, eta, phi, eem, ehad = _towers(events)
    jets = large_r_jets(1, ev, eta, phi, eem, ehad, CFG.large_r_jets)
    assert jets.pt.size == 1
    m = np.sqrt(2 * 400 * 300 * (1 - np.cos(0.3)))
    px = 400 * np.cos(0.85) + 300 * np.cos(1.15)
    py = 400 * np.sin(0.85) + 300 * np.sin(1.15)
    assert jets.mass[0] == pytest.approx(m, rel=1e-5)
    assert jets.pt[0] == pytest.approx(np.hypot(px, py), rel=1e-5)
    assert jets.eta[0] == pytest.approx(0.0, abs=1e-6)
    # towers 1.2 apart in phi are two jets with R = 1.0 (and one with R = 1.5)
    wide = _cluster(0.0, 0.0, 300.0, 300.0, dphi=1.2)
    ev, eta, phi, eem, ehad = _towers([wide])
    assert large_r_jets(1, ev, eta, phi, eem, ehad, CFG.large_r_jets).pt.size == 2
    assert large_r_jets(1, ev, eta, phi, eem, ehad, CFG.large_r_jets.replace(radius=1.5)).pt.size == 1


def _cluster_pt(eta: float, phi: float, pt: float, dphi: float):
    """Two massless towers of transverse momentum pt at (eta, phi ± dphi/2): jet mass 2 pt sin(dphi/2)."""
    return _cluster(eta, phi, pt * np.cosh(eta), pt * np.cosh(eta), dphi)


def test_signal_region_event_from_towers() -> None:
    # 4 jets of 2 towers each; masses from the tower opening angles; leading pT 630 GeV
    # clusters 1.57 apart in phi and 1.2 in eta: anti-kt cannot mix towers of two clusters
    layout = [(0.6, 0.0, 350, 0.9), (-0.6, np.pi / 2, 300, 0.9), (0.6, np.pi, 250, 0.9), (-0.6, -np.pi / 2, 150, 0.9)]
    sr = [t for e, p, pt, d in layout for t in _cluster_pt(e, p, pt, d)]
    narrow = [t for e, p, pt, _ in layout for t in _cluster_pt(e, p, pt, 0.1)]
    wide_deta = sr[:2] + _cluster_pt(-1.0, np.pi / 2, 300, 0.9) + sr[4:]
    ev, eta, phi, eem, ehad = _towers([sr, narrow, wide_deta])
    jets = large_r_jets(3, ev, eta, phi, eem, ehad, CFG.large_r_jets)
    var = event_variables(jets, 3, CUTS)
    masses = [2 * pt * np.cos(d / 2) * np.tan(d / 2) for _, _, pt, d in layout]  # 2 pT_tower sin(d/2)
    assert var.n_jets.tolist() == [4, 4, 4]
    assert var.lead_pt[0] == pytest.approx(2 * 350 * np.cos(0.45), rel=1e-4)
    assert var.mj[0] == pytest.approx(sum(masses), rel=1e-4) and sum(masses) > 800
    # a massive jet's pseudorapidity: asinh(sinh(eta_tower) / cos(dphi / 2))
    jet_eta = lambda eta: np.arcsinh(np.sinh(eta) / np.cos(0.45))
    assert var.deta12[0] == pytest.approx(2 * jet_eta(0.6), abs=1e-4) and 2 * jet_eta(0.6) < 1.4
    assert var.deta12[2] == pytest.approx(jet_eta(0.6) - jet_eta(-1.0), abs=1e-4)
    assert jet_eta(0.6) - jet_eta(-1.0) > 1.4
    assert var.sr.tolist() == [True, False, False]  # narrow: M_J < 100 GeV; third: |deta12| = 1.74


def test_weighted_rates_and_errors(tmp_path) -> None:
    table = {
        "event": np.arange(6, dtype=np.uint64), "label": np.array([1, 1, 1, 0, 0, 0], np.int8),
        "weight": np.array([1.0, 1.0, 2.0, 10.0, 1.0, 1.0]),
        "sr": np.array([True, False, True, False, True, False]),
    }
    r = rates(table)
    assert r.tpr == pytest.approx(0.75) and r.fpr == pytest.approx(1 / 12)
    assert (r.n_signal, r.n_signal_pass, r.n_background, r.n_background_pass) == (3, 2, 3, 1)
    assert list(r.to_dict()) == ["tpr", "tpr_err", "n_signal", "n_signal_pass", "fpr", "fpr_err", "n_background",
                                 "n_background_pass"]
    eff, err = weighted_efficiency(table["sr"][3:], table["weight"][3:])
    assert eff == pytest.approx(1 / 12)
    expect = np.sqrt(10**2 * (1 / 12) ** 2 + (1 - 1 / 12) ** 2 + (1 / 12) ** 2) / 12
    assert err == pytest.approx(expect)
    full = {c: table.get(c, np.zeros(6, np.float32)) for c in
            ("event", "label", "weight", "n_jets", "lead_pt", "deta12", "mj", "presel", "sr")}
    write_table(tmp_path / "t.h5", full, {"sample": "x"})
    back = read_table(tmp_path / "t.h5")
    assert back.summary == {"sample": "x"} and back.sample == "x"
    assert back.columns["sr"].tolist() == table["sr"].tolist()


def test_bad_inputs() -> None:
    with pytest.raises(SelectionInputError, match="total weight 0"):
        weighted_efficiency(np.array([True, False]), np.zeros(2))
    table = {"event": np.arange(2), "label": np.ones(2, np.int8), "weight": np.ones(2), "sr": np.ones(2, bool)}
    with pytest.raises(SelectionInputError, match="no background events"):
        rates(table)
    with pytest.raises(SelectionInputError, match="not found"):
        read_table("/nonexistent/table.h5")
    with pytest.raises(ConfigError, match="trimming"):
        RpvConfig.validated({"large_r_jets": {"trimming": True}})


def _table(n: int, **columns: np.ndarray) -> dict[str, np.ndarray]:
    full = {c: np.zeros(n, np.float32) for c in ("n_jets", "lead_pt", "deta12", "mj", "presel")}
    full.update(columns)
    return full


def test_rates_command_output_carries_provenance(tmp_path, capsys) -> None:
    """``hepline rpv rates --output`` writes a JSON whose sidecar names the tables read;
    without ``--output`` it prints the same JSON; ``--split`` keeps one calo.split split."""
    import json

    n = 4
    full = _table(n, event=np.arange(n, dtype=np.uint64), label=np.array([1, 1, 0, 0], np.int8),
                  weight=np.ones(n), sr=np.array([True, False, True, False]))
    write_table(tmp_path / "t.h5", full, {"sample": "x"}, provenance={"stage": "test"})
    assert read_provenance(tmp_path / "t.h5") == {"stage": "test"}
    out = tmp_path / "rates.json"
    assert main(["rpv", "rates", "--config", str(DEFAULT_CONFIG), "--output", str(out), str(tmp_path / "t.h5")]) == 0
    rec = read_provenance(out)
    assert rec["stage"] == "rpv.rates" and rec["inputs"] == [file_identity(tmp_path / "t.h5")]
    got = json.loads(out.read_text())
    err = float(np.sqrt(0.5 ** 2 + 0.5 ** 2) / 2)  # √(Σ w² (pass − ε)²) / Σw
    assert got == {"split": "all", "tpr": 0.5, "tpr_err": err, "n_signal": 2, "n_signal_pass": 1, "fpr": 0.5,
                   "fpr_err": err, "n_background": 2, "n_background_pass": 1, "samples": ["x"]}
    assert main(["rpv", "rates", "--config", str(DEFAULT_CONFIG), str(tmp_path / "t.h5")]) == 0
    assert json.loads(capsys.readouterr().out) == got


def test_rates_of_one_split(tmp_path, config) -> None:
    # default calo.split: modulus 10, test residues 7, 8, 9
    n = 20
    event = np.arange(n, dtype=np.uint64)
    label = (event % 2).astype(np.int8)
    write_table(tmp_path / "t.h5", _table(n, event=event, label=label, weight=np.ones(n), sr=event >= 8),
                {"sample": "x"})
    res = table_rates(config, [tmp_path / "t.h5"], split="test")
    test = np.isin(event % 10, config.calo.split.test)
    assert res.rates.n_signal + res.rates.n_background == int(test.sum()) == 6
    assert res.rates.tpr == pytest.approx(np.mean((event >= 8)[test & (label == 1)]))
    assert res.to_dict()["split"] == "test"


def test_stage_statistics_and_command(tmp_path) -> None:
    """Per cut: the same masks as the selection, the weighted efficiency and n_eff = (Σw)²/Σw²."""
    import json

    events = [
        [(500, 0.1, 250), (400, -0.5, 200), (300, 0.3, 200), (250, 1.0, 200)],   # SR
        [(500, 0.1, 200), (400, -0.5, 150), (300, 0.3, 150), (250, 1.0, 110), (210, 0.0, 50)],  # SR
        [(500, 0.1, 250), (400, -1.5, 200), (300, 0.3, 200), (250, 1.0, 200)],   # fails |deta12|
        [(500, 0.1, 250), (400, -0.5, 200), (300, 0.3, 200)],                    # presel only
        [(430, 0.1, 250), (400, -0.5, 200), (300, 0.3, 200), (250, 1.0, 200)],   # no presel
    ]
    var = event_variables(_jets(events), len(events), CUTS)
    weight = np.array([1.0, 3.0, 1.0, 2.0, 5.0])
    table = {"event": np.arange(5, dtype=np.uint64), "label": np.zeros(5, np.int8), "weight": weight,
             **{k: getattr(var, k) for k in ("n_jets", "lead_pt", "deta12", "mj", "presel", "sr")}}
    st = stage_statistics(table, CUTS)
    assert [st[k].raw for k in st] == [int(m.sum()) for m in var.cutflow.values()] == [5, 5, 4, 3, 2, 2]
    assert st["M_J"].efficiency == pytest.approx(4 / 12)
    assert st["M_J"].n_eff == pytest.approx(16 / 10)       # (1 + 3)² / (1 + 9)
    assert st["all"].n_eff == pytest.approx(144 / 40)
    write_table(tmp_path / "t.h5", table, {"sample": "qcd_x"})
    out = tmp_path / "stats.json"
    assert main(["rpv", "stats", "--config", str(DEFAULT_CONFIG), "--output", str(out), str(tmp_path / "t.h5")]) == 0
    got = json.loads(out.read_text())
    assert got["qcd_x"]["events"] == 5 and got["qcd_x"]["stages"]["M_J"] == st["M_J"].to_dict()


def test_select_writes_the_table_and_the_cutflow(hepline_sample_files, config, tmp_path) -> None:
    """``hepline rpv select``: the table and the JSON hold what :func:`run_selection` computes;
    the weights are genWeight · σ/Σw and the cutflow's last step is the SR."""
    import json

    sig = [f for f in hepline_sample_files if f.name.startswith("sig")]
    out = tmp_path / "sig.h5"
    assert main(["rpv", "select", "--config", str(DEFAULT_CONFIG), "--sample", "sig", "--label", "1",
                 "--output", str(out), *map(str, sig)]) == 0
    mem = run_selection(sig, "sig", 1, config.rpv)
    back = read_table(out)
    for c in COLUMNS:
        np.testing.assert_array_equal(back.columns[c], mem.table[c])
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary == json.loads(json.dumps(mem.to_dict())) == back.summary
    assert read_provenance(out.with_suffix(".json"))["stage"] == "rpv.select"
    norm = sample_normalisation(sig, "sig")
    assert mem.events == 55 == norm.n_events and summary["sumw"] == norm.sumw
    assert [s["cut"] for s in summary["cutflow"]] == list(CUTFLOW)
    assert summary["cutflow"][0]["sigma_pb"] == pytest.approx(float(mem.table["weight"].sum()))
    assert summary["cutflow"][-1]["events"] == int(mem.table["sr"].sum())
    assert summary["config"] == {"large_r_jets": config.rpv.large_r_jets.to_dict(), "cuts": config.rpv.cuts.to_dict()}
    # the label of a sample neither signal nor background must be given
    with pytest.raises(SampleInputError, match="neither rpv.signal_samples nor rpv.background_samples"):
        select(config, sig, sample="sig", output=tmp_path / "x.h5")
