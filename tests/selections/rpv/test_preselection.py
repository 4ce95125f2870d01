"""The write-time multijet preselection: it contains the cut-based signal region, and the
weights of the kept events reproduce their unfiltered yields."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.core.config import ConfigError, RpvConfig, load_config
from analysis.generation.produce import produce_shard
from analysis.io.ingest import read_metadata
from selections.rpv.cuts import run_selection, select_arrays
from selections.rpv.preselection import (
    check_contains_signal_region,
    preselect_block,
    preselection_mask,
    preselection_summary,
    write_filter,
)
from selections.rpv.samples import sample_normalisation
from tests.fixtures.paths import DEFAULT_CONFIG

RPV = RpvConfig.default()


def _constructed_towers(n_events: int, rng: np.random.Generator) -> ak.Array:
    """Towers (eta, phi, eEM, eHad in GeV) of events with 0-6 hard, wide clusters around random
    axes (pT 150-700 GeV each, spread 0.15-0.45 so that the jets have masses of O(100 GeV)),
    plus soft towers everywhere; float32 as the ntuples store them. Every third event has 3-5
    clusters, all below 460 GeV: leading jets near the 400 and 440 GeV thresholds."""
    per_event = []
    for i in range(n_events):
        eta, phi, e = [rng.uniform(-4.5, 4.5, 40)], [rng.uniform(-np.pi, np.pi, 40)], [rng.exponential(2.0, 40)]
        near = i % 3 == 0
        for _ in range(rng.integers(3, 6) if near else rng.integers(0, 7)):
            axis_eta, axis_phi = rng.uniform(-2.2, 2.2), rng.uniform(-np.pi, np.pi)
            k, spread = 12, rng.uniform(0.15, 0.45)
            d_eta, d_phi = rng.normal(0, spread, k), rng.normal(0, spread, k)
            pt = rng.uniform(350 if near and _ == 0 else 150, 460 if near else 700) * rng.dirichlet(np.ones(k))
            t_eta = axis_eta + d_eta
            eta.append(t_eta)
            phi.append(np.mod(axis_phi + d_phi + np.pi, 2 * np.pi) - np.pi)
            e.append(pt * np.cosh(t_eta))
        eta_a, phi_a, e_a = (np.concatenate(x).astype(np.float32) for x in (eta, phi, e))
        f_em = rng.uniform(0.1, 0.6, e_a.size).astype(np.float32)
        per_event.append({"eta": eta_a, "phi": phi_a, "eEM": e_a * f_em, "eHad": e_a * (1 - f_em)})
    return ak.Array(per_event)


def test_preselection_keeps_every_signal_region_event() -> None:
    towers = _constructed_towers(400, np.random.default_rng(7))
    block = {"Tower": towers, "genWeight": np.ones(len(towers), np.float32)}
    kept = preselect_block(block, RPV)
    flat = ak.Array({f"Tower_{k}": towers[k] for k in ("eta", "phi", "eEM", "eHad")})
    var = select_arrays(flat, RPV)
    # the sample is not trivial: events in the SR, events dropped, events kept outside the SR
    assert var.sr.sum() >= 5
    assert (~kept).sum() >= 50
    assert (kept & ~var.presel).sum() >= 5  # leading jet in (400, 440] GeV: kept, not cut-preselected
    assert not np.any(var.sr & ~kept), "the preselection drops signal-region events"
    assert not np.any(var.presel & ~kept), "the preselection drops cut-based preselection events"
    # the flags are the documented thresholds on the search's own jets
    np.testing.assert_array_equal(kept, (var.n_jets >= 3) & (var.lead_pt > 400.0))


def test_preselection_thresholds() -> None:
    p = RPV.preselection
    np.testing.assert_array_equal(
        preselection_mask(np.array([2, 3, 3, 4, 5]), np.array([900.0, 400.0, 400.5, 401.0, 0.0]), p),
        [False, False, True, True, False])


@pytest.mark.parametrize("change", [{"n_jets_min": 4}, {"leading_pt_min_gev": 450.0}])
def test_a_preselection_tighter_than_the_cuts_is_refused(change: dict[str, float]) -> None:
    rpv = RPV.replace(preselection=RPV.preselection.replace(**change))
    with pytest.raises(ConfigError, match="rpv.preselection"):
        check_contains_signal_region(rpv)
    with pytest.raises(ConfigError, match="would drop signal-region events"):
        write_filter(rpv)


def test_weights_after_preselection_reproduce_the_unfiltered_yields(tmp_path) -> None:
    """One shard generated twice with the same seed, without and with the preselection: the kept
    events are the same events, their weights genWeight·σ·ε/Σw_kept equal genWeight·σ/Σw_all, and
    the weighted yields of every cut agree."""
    cfg = load_config(DEFAULT_CONFIG)
    n = 120
    full, kept = tmp_path / "full.root", tmp_path / "kept.root"
    produce_shard(cfg, "qcd_400_800", 0, full, n_events=n, progress=False)
    res = produce_shard(cfg, "qcd_400_800", 0, kept, n_events=n, progress=False, write_filter=write_filter(cfg.rpv))

    meta = read_metadata(kept)
    pre = meta["preselection"]
    assert pre["n_before"] == n and 0 < pre["n_after"] < n == meta["n_generated"]
    assert meta["n_events"] == pre["n_after"]
    assert meta["xsec_pb"] == pytest.approx(read_metadata(full)["xsec_pb"] * pre["efficiency"], rel=1e-12)
    assert res.metadata.preselection is not None
    summary = preselection_summary([kept], "qcd_400_800")
    assert summary.n_after == pre["n_after"] and summary.efficiency == pytest.approx(pre["efficiency"])

    with uproot.open(full) as f:
        a_full = f["Events"].arrays(["event", "genWeight", "Tower_eta", "Tower_phi", "Tower_eEM", "Tower_eHad"])
    with uproot.open(kept) as f:
        a_kept = f["Events"].arrays(["event", "genWeight"])
    passing = preselect_block(a_full, cfg.rpv)
    np.testing.assert_array_equal(np.asarray(a_full["event"])[passing], np.asarray(a_kept["event"]))

    w_full = sample_normalisation([full], "qcd_400_800").event_weights(a_full["genWeight"])
    w_kept = sample_normalisation([kept], "qcd_400_800").event_weights(a_kept["genWeight"])
    np.testing.assert_allclose(w_kept, w_full[passing], rtol=1e-12)

    sel_full = run_selection([full], "qcd_400_800", 0, cfg.rpv)
    sel_kept = run_selection([kept], "qcd_400_800", 0, cfg.rpv)
    flow_full = {s.cut: s.sigma_pb for s in sel_full.cutflow}
    for step in sel_kept.cutflow[2:]:  # from the cut-based preselection on, every cut's σ is kept
        assert step.sigma_pb == pytest.approx(flow_full[step.cut], rel=1e-9, abs=1e-12)
    assert sel_kept.cutflow[0].sigma_pb == pytest.approx(flow_full["all"] * pre["efficiency"], rel=1e-9)


def test_rpv_generate_command_writes_the_preselected_shard(tmp_path, capsys) -> None:
    out, metrics = tmp_path / "qcd.root", tmp_path / "qcd.metrics.json"
    from analysis.cli import main

    assert main(["rpv", "generate", "--config", str(DEFAULT_CONFIG), "--sample", "qcd_800_inf", "--shard", "0",
                 "--events", "40", "--output", str(out), "--metrics", str(metrics), "-q"]) == 0
    meta = read_metadata(out)
    assert meta["preselection"]["n_before"] == 40 and meta["n_events"] == meta["preselection"]["n_after"]
    assert meta["preselection"]["name"] == "rpv_multijet" and meta["shard"] == 0
    assert metrics.stat().st_size > 0
    # a sample outside the rpv samples is refused, naming it
    assert main(["rpv", "generate", "--config", str(DEFAULT_CONFIG), "--sample", "ttbar", "--events", "10",
                 "--output", str(tmp_path / "t.root")]) == 2
    assert "'ttbar' is in neither rpv.signal_samples nor rpv.background_samples" in capsys.readouterr().err
    assert not (tmp_path / "t.root").exists()


def test_rpv_select_refuses_non_finite_towers() -> None:
    """A NaN tower energy gave NaN large-R jets and Δη silently (issue 21): now an error
    naming the source, the branch and the event."""
    from analysis.core.errors import NonFiniteInputError

    towers = _constructed_towers(20, np.random.default_rng(3))
    flat = {f"Tower_{k}": towers[k] for k in ("eta", "phi", "eEM", "eHad")}
    e_had = ak.to_list(flat["Tower_eHad"])
    e_had[7][0] = float("inf")
    flat["Tower_eHad"] = ak.Array(e_had)
    arrays = ak.Array({"event": np.arange(100, 120, dtype=np.uint64), **flat})
    with pytest.raises(NonFiniteInputError, match=r"^s\.root: Tower_eHad holds 1 NaN/inf value\(s\), the first in event 107$"):
        select_arrays(arrays, RPV, source="s.root")
