"""The CNN claim (selections.rpv.claim): TPR ratios at the cut-based and at fixed background
efficiencies on constructed scores, the "insufficient statistics (N)" path, the weighted
bootstrap, the seed summary, and ``hepline calo claim`` on files with both networks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from analysis.cli import main
from analysis.core.config import CaloConfig, Config
from analysis.core.provenance import read_provenance
from selections.rpv.claim import (
    FORMAT,
    RankedScores,
    claim,
    cpu_seconds_of_shards,
    effective_events,
    undefined_label,
)
from selections.rpv.cnn.images import CaloInputError, ImageSet, build_sparse
from selections.rpv.cnn.pointcloud import train_point_cloud_model
from selections.rpv.cnn.train import train_model
from tests.selections.rpv.cnn.test_train import SPEC, _cfg, _files, _synthetic

N_SIG, N_BKG = 400, 4000


def _constructed(n_sig: int = N_SIG, n_bkg: int = N_BKG) -> ImageSet:
    """Signal and two background samples with one tower each; only labels, weights and samples
    matter here. Background weights: 1 (bkg_lo) and 2 (bkg_hi); signal 0.5."""
    n = n_sig + n_bkg
    ev = np.arange(n)
    e = np.full(n, 10.0)
    sp = build_sparse(n, SPEC, ev, np.zeros(n), np.zeros(n), e, e, ev[:0], np.zeros(0), np.zeros(0))
    label = np.r_[np.ones(n_sig, np.int8), np.zeros(n_bkg, np.int8)]
    sample = np.r_[np.zeros(n_sig, np.int16), np.where(np.arange(n_bkg) % 2 == 0, 1, 2).astype(np.int16)]
    weight = np.array([0.5, 1.0, 2.0])[sample]
    return ImageSet(sp, np.arange(1, n + 1, dtype=np.uint64), label, weight, np.ones(n, np.float32), sample,
                    ["sig", "bkg_lo", "bkg_hi"],
                    {"sig": {"xsec_pb": 1.0}, "bkg_lo": {"xsec_pb": 1000.0}, "bkg_hi": {"xsec_pb": 30.0}})


def _claim_cfg(**evaluation) -> Config:
    base = _cfg()
    calo = CaloConfig.validated({**base.calo.to_dict(), "evaluation": {
        "bootstrap": 50, "fpr_targets": [0.01], "min_effective_events": 10, "limits": False, **evaluation}})
    return base.replace(calo=calo)


def _scores(test: ImageSet, rng: np.random.Generator) -> np.ndarray:
    """Signal ~ U(0.5, 1), background ~ U(0, 0.6): at FPR 1 % a TPR of ~0.8, above the 'cut's 0.5."""
    return np.where(test.label == 1, rng.uniform(0.5, 1.0, len(test)), rng.uniform(0.0, 0.6, len(test)))


def _cut(test: ImageSet, n_bkg_pass: int) -> np.ndarray:
    """The 'cut-based region': every second signal event and the first n_bkg_pass background events."""
    idx = np.arange(len(test))
    bkg_pos = np.cumsum(test.label == 0) - 1
    return ((test.label == 1) & (idx % 2 == 0)) | ((test.label == 0) & (bkg_pos < n_bkg_pass))


def test_ranked_scores_match_a_direct_scan() -> None:
    rng = np.random.default_rng(3)
    score = np.round(rng.random(500), 2)  # ties
    label = (rng.random(500) < 0.3).astype(int)
    w = rng.exponential(1.0, 500)
    rk = RankedScores(score, label)
    for target in (0.0, 0.01, 0.1, 0.37, 1.0):
        tpr, fpr, thr, neff = rk.at_fpr(w, target)
        best = (0.0, 0.0, math.inf)
        for t in np.unique(score):
            sel = score >= t
            f = w[sel & (label == 0)].sum() / w[label == 0].sum()
            if f <= target:
                best = max(best, (w[sel & (label == 1)].sum() / w[label == 1].sum(), f, t), key=lambda x: (x[1], x[0]))
        assert (tpr, fpr) == pytest.approx(best[:2], rel=1e-12) and thr == best[2]
        if math.isfinite(thr):
            assert neff == pytest.approx(effective_events(w[(score >= thr) & (label == 0)]))


def test_ratio_with_enough_background_is_a_number_with_a_bootstrap_error() -> None:
    test = _constructed()
    cfg = _claim_cfg()
    cut = _cut(test, 40)
    score = _scores(test, np.random.default_rng(0))
    res = claim(cfg, test, cut, [("cnn", 1, score, {}), ("cnn", 2, 1 - score, {}), ("point_cloud", 1, score, {})])
    c = res.cut_based
    w_b = test.weight[test.label == 0]
    assert c.tpr == pytest.approx(0.5) and c.fpr == pytest.approx(test.weight[cut & (test.label == 0)].sum() / w_b.sum())
    assert c.n_background_pass == 40 and c.n_effective_background == pytest.approx(effective_events(
        test.weight[cut & (test.label == 0)]))
    assert c.slices["bkg_lo"].passing == 20 and c.slices["bkg_hi"].fpr_share_upper_95 is None
    assert sum(s.fpr_share for s in c.slices.values()) == pytest.approx(c.fpr)

    good = res.runs[0]
    wp = good.at_cut_fpr
    sel = score >= wp.threshold
    assert wp.fpr <= c.fpr and wp.tpr == pytest.approx(test.weight[sel & (test.label == 1)].sum()
                                                       / test.weight[test.label == 1].sum())
    assert wp.ratio.value == pytest.approx(wp.tpr / c.tpr) and wp.ratio.value > 1.0
    assert wp.ratio.bootstrap_err is not None and 0 < wp.ratio.bootstrap_err < 0.5
    lo, hi = wp.ratio.interval_68
    assert lo < wp.ratio.value < hi
    assert wp.ratio.replicas + wp.ratio.replicas_undefined == 50
    # the anti-correlated 'network' selects almost nothing at this FPR: TPR ratio ~0
    assert res.runs[1].at_cut_fpr.ratio.value < 0.2
    assert res.runs[0].auc > 0.9 and res.runs[1].auc < 0.1
    # the seed summary: the mean of the defined seeds, their spread
    s = res.networks["cnn"].to_dict()
    assert s["seeds"] == [1, 2] and s["ratio_at_cut_fpr"]["defined_seeds"] == 2
    assert s["ratio_at_cut_fpr"]["mean"] == pytest.approx(
        np.mean([r.at_cut_fpr.ratio.value for r in res.runs[:2]]))
    # JSON form: numbers
    d = json.loads(json.dumps(res.to_dict()))
    assert d["format"] == FORMAT and isinstance(d["runs"]["cnn_s1"]["at_cut_fpr"]["ratio"], float)
    assert isinstance(d["runs"]["cnn_s1"]["at_fpr"]["1.0e-02"]["ratio"], float)


def test_expected_limits_of_a_region_with_enough_background() -> None:
    test = _constructed()
    score = _scores(test, np.random.default_rng(5))
    res = claim(_claim_cfg(limits=True, limit_min_background_events=50), test, _cut(test, 40),
                [("cnn", 1, score, {})])
    cut = res.limits["cut_based"]["expected_xsec_pb"]
    assert len(cut) == 5 and 0 < cut[0] < cut[2] < cut[4]
    assert len(res.limits["cnn_s1_score"]["expected_xsec_pb"]) == 5
    # the network's region at the cut-based FPR holds 40-60 background events: a limit too
    assert len(res.limits["cnn_s1_wp"]["expected_xsec_pb"]) == 5
    few = claim(_claim_cfg(limits=True), test, _cut(test, 4), [("cnn", 1, score, {})]).limits["cut_based"]
    assert few["expected_xsec_pb"] == undefined_label(few["n_effective_background"])


def test_the_same_seed_gives_the_same_bootstrap() -> None:
    test, cfg = _constructed(), _claim_cfg()
    cut, score = _cut(test, 40), _scores(test, np.random.default_rng(1))
    a = claim(cfg, test, cut, [("cnn", 1, score, {})]).to_dict()
    b = claim(cfg, test, cut, [("cnn", 1, score, {})]).to_dict()
    assert a == b
    # the same events in another order (other file order): the same replicas
    perm = np.random.default_rng(9).permutation(len(test))
    p = claim(cfg, test.take(perm), cut[perm], [("cnn", 1, score[perm], {})]).to_dict()
    for key in ("at_cut_fpr", "at_fpr"):
        wa, wp = a["runs"]["cnn_s1"][key], p["runs"]["cnn_s1"][key]
        wa, wp = (wa, wp) if key == "at_cut_fpr" else (wa["1.0e-02"], wp["1.0e-02"])
        for field in ("ratio", "bootstrap_err", "tpr", "fpr"):
            assert wp[field] == pytest.approx(wa[field], rel=1e-9), (key, field)
        assert wp["bootstrap_replicas"] == wa["bootstrap_replicas"]
    c = claim(cfg.replace(seed=cfg.seed + 1), test, cut, [("cnn", 1, score, {})]).to_dict()
    assert c["runs"]["cnn_s1"]["at_cut_fpr"]["bootstrap_err"] != a["runs"]["cnn_s1"]["at_cut_fpr"]["bootstrap_err"]


@pytest.mark.parametrize("n_bkg_pass", [0, 4])
def test_a_cut_point_on_too_few_background_events_gives_no_number(n_bkg_pass: int) -> None:
    """FPR 0, or 4 passing background events (n_eff ≈ 3.6 < 10): every ratio at the cut-based
    FPR is 'insufficient statistics (N)', in memory, in the JSON and in the seed summary."""
    test = _constructed()
    cut = _cut(test, n_bkg_pass)
    neff = effective_events(test.weight[cut & (test.label == 0)])
    assert neff < 10
    score = _scores(test, np.random.default_rng(2))
    res = claim(_claim_cfg(), test, cut, [("cnn", 1, score, {}), ("cnn", 2, score[::-1].copy(), {})])
    label = undefined_label(neff)
    assert label == f"insufficient statistics ({neff:.3g})"
    for r in res.runs:
        assert r.at_cut_fpr.ratio.value is None and r.at_cut_fpr.ratio.undefined == label
        assert r.at_cut_fpr.ratio.describe() == label
        assert r.at_cut_fpr.ratio.replicas == 0 and r.at_cut_fpr.ratio.replicas_undefined == 50
        # at FPR = 1 % the network's own background above its threshold is plentiful: a number
        assert isinstance(r.at_targets["1.0e-02"].ratio.value, float)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["runs"]["cnn_s1"]["at_cut_fpr"]["ratio"] == label
    assert d["networks"]["cnn"]["ratio_at_cut_fpr"] == label
    if n_bkg_pass == 0:
        assert label == "insufficient statistics (0)"
        assert res.cut_based.slices["bkg_lo"].fpr_share_upper_95 == pytest.approx(
            3 * 1.0 / test.weight[test.label == 0].sum())


def test_a_target_fpr_resting_on_few_network_events_gives_no_number() -> None:
    """At FPR = 5e-4 of ~6000 background weight units the network keeps ~1 background event."""
    test = _constructed()
    score = _scores(test, np.random.default_rng(4))
    res = claim(_claim_cfg(fpr_targets=[0.0005]), test, _cut(test, 40), [("cnn", 1, score, {})])
    wp = res.runs[0].at_targets["5.0e-04"]
    assert wp.n_effective_background < 10 and wp.ratio.value is None
    assert wp.ratio.undefined == undefined_label(wp.n_effective_background)


def test_claim_bad_inputs() -> None:
    test, cfg = _constructed(), _claim_cfg()
    with pytest.raises(CaloInputError, match="at least one trained network"):
        claim(cfg, test, _cut(test, 40), [])
    with pytest.raises(CaloInputError, match="3 scores"):
        claim(cfg, test, _cut(test, 40), [("cnn", 1, np.zeros(3), {})])


def test_claim_command_on_files_with_both_networks(tmp_path) -> None:
    """Both networks trained on image files (one epoch), then ``hepline calo claim``: the JSON has
    every run, the cut-based point on the same test events, limits, the training records."""
    data = _synthetic(300, np.random.default_rng(8))
    cfg = _cfg(max_epochs=1)
    cfg = cfg.replace(calo=CaloConfig.validated({
        **cfg.calo.to_dict(), "point_cloud": {"batch_size": 32, "max_epochs": 1, "phi_layers": [16], "f_layers": [16]},
        "evaluation": {**cfg.calo.evaluation.to_dict(), "bootstrap": 10, "limit_min_background_events": 5}}))
    files, tables = _files(data, tmp_path)
    train_model(cfg, files, tmp_path / "cnn", device="cpu", progress=False)
    train_point_cloud_model(cfg, files, tmp_path / "pc", seed=3, device="cpu", progress=False)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(cfg.to_dict()))
    metrics = tmp_path / "shard.metrics.json"
    metrics.write_text(json.dumps({"events": 1000, "wall_s": 12.0, "pythia_cpu_s": 8.0, "detector_cpu_s": 1.5,
                                   "write_cpu_s": 0.5}))
    out = tmp_path / "claim" / "cnn_claim.json"
    assert main(["calo", "claim", "--config", str(config_file), "--models", str(tmp_path / "cnn" / "calo_cnn.pt"),
                 str(tmp_path / "pc" / "point_cloud.pt"), "--images", *map(str, files), "--cut-tables",
                 *map(str, tables), "--shard-metrics", str(metrics), "--output", str(out), "--plot",
                 str(tmp_path / "claim" / "roc.png"), "--device", "cpu"]) == 0
    d = json.loads(out.read_text())
    assert set(d["runs"]) == {f"cnn_s{cfg.seed}", "point_cloud_s3"} and set(d["networks"]) == {"cnn", "point_cloud"}
    n_test = int(np.isin(data.event % 10, [7, 8, 9]).sum())
    assert d["test_events"]["signal"] + d["test_events"]["background"] == n_test
    assert d["cut_based"]["n_signal_pass"] == int(np.sum((data.label == 1) & np.isin(data.event % 10, [7, 8, 9])
                                                        & (data.event % 3 == 0)))
    # the cut 'region' keeps one background event per slice: no number, the count instead
    assert d["runs"]["point_cloud_s3"]["at_cut_fpr"]["ratio"].startswith("insufficient statistics (")
    # no limit from a one-bin region on ~1 background event; the binned scores give 5 numbers
    lim = d["expected_limits"]
    assert lim["cut_based"]["expected_xsec_pb"].startswith("insufficient statistics (")
    xs = lim["point_cloud_s3_score"]["expected_xsec_pb"]
    assert len(xs) == 5 and 0 < xs[0] <= xs[2] <= xs[4], lim
    assert d["runs"]["point_cloud_s3"]["model"]["training_cpu_seconds"] > 0
    assert d["cpu"]["generation"] == cpu_seconds_of_shards([metrics])
    assert d["cpu"]["generation"]["core_hours"] == pytest.approx(10.0 / 3600)
    assert d["samples"]["sig"]["test_cut_based_pass"] == d["cut_based"]["n_signal_pass"]
    assert (tmp_path / "claim" / "roc.png").stat().st_size > 0
    assert read_provenance(out)["stage"] == "calo.claim"
