"""taggers.performance and taggers.evaluate: working points, rejections with binomial errors,
the WP file round trip, ratios, typed results, tagger subsets, and bad inputs."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from analysis.core.config import load_config
from analysis.core.errors import ModelMismatchError
from taggers.evaluate import RESULTS_FILE, WP_FILE, evaluate
from taggers.export import read_split, write_h5
from taggers.models import MissingModelError, load_models
from taggers.performance import (
    TaggerPerformance,
    binomial_efficiency,
    bootstrap_ratios,
    evaluate_dataset,
    rejection,
    summary_table,
    working_point_cut,
    working_point_numbers,
)
from taggers.training import TaggerInputError
from tests.taggers.test_pipeline import small_pipeline, write_config


@pytest.fixture(scope="module")
def pipeline(tagger_ttbar_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return small_pipeline(tagger_ttbar_file, tmp_path_factory)


# --------------------------------------------------------------------------- constructed examples


def constructed(weight: float | np.ndarray = 1.0):
    """1000 b jets with D = 0.001 .. 1.000; 10000 light jets of which 100 have D > 0.3;
    1000 c jets of which 250 have D > 0.3. The 70 % WP cut lies between 0.300 and 0.301."""
    d_b = np.arange(1, 1001) / 1000.0
    d_l = np.where(np.arange(10000) < 100, 0.9, 0.1)
    d_c = np.where(np.arange(1000) < 250, 0.8, 0.2)
    d = np.concatenate([d_b, d_l, d_c])
    label = np.concatenate([np.full(1000, 5), np.full(10000, 0), np.full(1000, 4)])
    w = np.broadcast_to(np.asarray(weight, dtype=np.float64), d.shape).copy()
    return d, label, w


def test_rejection_errors_known_answer() -> None:
    d, label, w = constructed()
    wp = working_point_numbers(d, label, w, [0.70])["70"]
    assert 0.300 < wp.cut < 0.301
    assert wp.b.eff == pytest.approx(0.70)
    assert wp.b.err == pytest.approx(math.sqrt(0.7 * 0.3 / 1000))
    # light: eps = 0.01, R = 100, sigma_R = R sqrt((1 - eps)/(eps N)) = 100 sqrt(0.99/100)
    assert wp.light_rejection == pytest.approx(100.0)
    assert wp.rejection["light"].err == pytest.approx(100 * math.sqrt(0.99 / 100))  # 9.95
    # c: eps = 0.25, R = 4, sigma_R = 4 sqrt(0.75/250)
    assert wp.c_rejection == pytest.approx(4.0)
    assert wp.rejection["c"].err == pytest.approx(4 * math.sqrt(0.75 / 250))
    assert wp.rejection["light"].lower_limit is False
    assert wp.efficiency["light"].eff == pytest.approx(0.01) and "tau" not in wp.efficiency
    assert wp.to_dict()["light_rejection_err"] == wp.rejection["light"].err


def test_uniform_weights_change_nothing_and_kish_counts() -> None:
    base = working_point_numbers(*constructed(), [0.7])["70"].to_dict()
    scaled = working_point_numbers(*constructed(3.0), [0.7])["70"].to_dict()
    for k in ("cut", "light_rejection", "light_rejection_err", "c_rejection_err"):
        assert scaled[k] == pytest.approx(base[k]), k
    # Kish: half the light jets with weight 2 -> N_eff = (15000)^2 / (5000 + 20000) = 9000
    w = np.array([1.0, 2.0] * 5000)
    eff = binomial_efficiency(np.arange(10000) < 100, w)
    assert eff.n_eff == pytest.approx(9000.0)
    e = (50 * 1 + 50 * 2) / 15000  # first 100 jets alternate weights 1, 2
    assert eff.eff == pytest.approx(e)
    assert eff.err == pytest.approx(math.sqrt(e * (1 - e) / 9000))
    un = binomial_efficiency(np.arange(10000) < 100, w, how="unweighted")
    assert un.n_eff == 10000 and un.err == pytest.approx(math.sqrt(e * (1 - e) / 10000))


def test_no_passing_jet_gives_a_flagged_lower_limit() -> None:
    r = rejection(0.0, 400.0)
    assert r.value == 400.0 and r.lower_limit is True and math.isfinite(r.err)
    with pytest.raises(TaggerInputError, match="empty"):
        rejection(float("nan"), 0.0)


def test_working_point_cut_never_splits_ties() -> None:
    d = np.array([5.0, 4.0, 3.0, 3.0, 3.0, 3.0, 2.0, 1.0, 0.0, -1.0])
    w = np.ones(d.size)
    cut, eff = working_point_cut(d, w, 0.4)  # 0.2 (D > 3.5) or 0.6 (D > 2.5): both 0.2 away
    assert cut in (3.5, 2.5) and eff == pytest.approx(np.mean(d > cut))
    cut, eff = working_point_cut(d, w, 0.62)  # 0.6 (D > 2.5) is closer than 0.7 (D > 1.5)
    assert cut == 2.5 and eff == pytest.approx(0.6)
    cut, eff = working_point_cut(d, w, 1.0)
    assert np.all(d > cut) and eff == 1.0
    with pytest.raises(TaggerInputError):
        working_point_cut(np.array([]), np.array([]), 0.7)


def test_bootstrap_ratio_error() -> None:
    """Identical taggers have ratio 1 with zero bootstrap spread; a different one does not."""
    d, label, w = constructed()
    rng = np.random.default_rng(1)
    other = d + rng.normal(0, 0.2, d.size)
    boot = bootstrap_ratios(
        {"ref": d, "same": d.copy(), "other": other}, label, w, [0.7], "ref", 30, seed=3
    )
    assert boot.std["same"]["70"]["light"] == pytest.approx(0.0, abs=1e-12)
    assert boot.error("other", "70", "light") > 0
    assert boot.to_dict() == {"replicas": 30, "skipped_replicas": 0}
    assert bootstrap_ratios({"ref": d}, label, w, [0.7], "ref", 0, seed=3).to_dict() == {}


# --------------------------------------------------------------------------- the stage outputs


def test_wp_file_round_trip(pipeline) -> None:
    """The cuts of working_points.json, applied to discriminants recomputed independently
    from the models on the test split, give the nominal b efficiencies within the binomial
    error."""
    wp = json.loads((pipeline["out"] / "working_points.json").read_text())
    test = read_split(pipeline["out"] / "test.h5")
    models = load_models(pipeline["models"], load_config(pipeline["config"]).taggers)
    disc = models.predict(test).discriminants  # IP/SV1 recomputed from the tracks
    is_b = test.jets["label"] == 5
    n_b = int(is_b.sum())
    assert n_b > 30
    for t, entry in wp["taggers"].items():
        d = disc[t].astype(np.float32)
        for name, e in entry["working_points"].items():
            eff = float(np.mean(d[is_b] > e["cut"]))
            nominal = e["b_efficiency"]
            sigma = math.sqrt(nominal * (1 - nominal) / n_b)
            assert abs(eff - nominal) <= sigma, (t, name, eff)
            assert eff == pytest.approx(e["b_efficiency_measured"], abs=1.5 / n_b), (t, name)
            light = test.jets["label"] == 0
            eps_l = max(float(np.mean(d[light] > e["cut"])), 1.0 / light.sum())
            assert 1.0 / eps_l == pytest.approx(e["light_rejection"], rel=0.05), (t, name)


def test_ratio_uses_the_reported_rejections(pipeline) -> None:
    res = json.loads((pipeline["out"] / "results.json").read_text())
    a = res["taggers"]["rnnip"]["working_points"]["70"]
    b = res["taggers"]["ip3d"]["working_points"]["70"]
    h = res["rnnip_over_ip3d_light_rejection"]
    assert h["value"] == pytest.approx(a["light_rejection"] / b["light_rejection"])
    expected = h["value"] * math.hypot(
        a["light_rejection_err"] / a["light_rejection"],
        b["light_rejection_err"] / b["light_rejection"],
    )
    assert h["error_uncorrelated"] == pytest.approx(expected)
    assert res["bootstrap"]["replicas"] == 20


# --------------------------------------------------------------------------- bad inputs


def test_empty_test_set(pipeline, tmp_path: Path) -> None:
    test = read_split(pipeline["out"] / "test.h5")
    empty = tmp_path / "test.h5"
    write_h5(empty, test.subset(np.zeros(len(test), bool)), test.meta["h5_metadata"])
    with pytest.raises(TaggerInputError, match="is empty"):
        evaluate(load_config(pipeline["config"]), empty, pipeline["models"], tmp_path / "out")
    assert not (tmp_path / "out" / "working_points.json").exists()


def test_test_set_without_c_jets(pipeline, tmp_path: Path) -> None:
    test = read_split(pipeline["out"] / "test.h5")
    path = tmp_path / "test.h5"
    write_h5(path, test.subset(test.jets["label"] != 4), test.meta["h5_metadata"])
    with pytest.raises(TaggerInputError, match="no c jets"):
        evaluate(
            load_config(pipeline["config"]),
            path,
            pipeline["models"],
            tmp_path / "out",
            plots=False,
            benchmark=False,
        )


def test_feature_file_of_another_preparation(pipeline, tmp_path: Path) -> None:
    """A test file whose dataset id differs from the models' is refused; so is a file that
    lacks a feature the models read, and the training split."""
    cfg = load_config(pipeline["config"])
    test = read_split(pipeline["out"] / "test.h5")
    meta = json.loads(json.dumps(test.meta["h5_metadata"]))
    meta["dataset"]["dataset_id"] = "0123456789abcdef"
    path = tmp_path / "other.h5"
    write_h5(path, test, meta)
    with pytest.raises(ModelMismatchError, match="mismatched model and feature file"):
        evaluate(cfg, path, pipeline["models"], tmp_path / "out", plots=False, benchmark=False)
    lacking = test.subset(slice(None))
    del lacking.jets["sv1_mass"]
    write_h5(path, lacking, test.meta["h5_metadata"])
    with pytest.raises(ModelMismatchError, match="sv1_mass"):
        evaluate(cfg, path, pipeline["models"], tmp_path / "out", plots=False, benchmark=False)
    with pytest.raises(ValueError, match="'train' split"):
        evaluate(
            cfg,
            pipeline["out"] / "train.h5",
            pipeline["models"],
            tmp_path / "out",
            plots=False,
            benchmark=False,
        )


def test_model_directory_missing_a_model(pipeline, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(pipeline["models"], models)
    shutil.copytree(pipeline["ipxd"], tmp_path / "ipxd")
    (models / "dl1.pt").unlink()
    with pytest.raises(MissingModelError, match="dl1.pt"):
        evaluate(
            load_config(pipeline["config"]),
            pipeline["out"] / "test.h5",
            models,
            tmp_path / "out",
            plots=False,
            benchmark=False,
        )


def test_error_count_option(pipeline, tmp_path: Path) -> None:
    """``error_count: unweighted`` is accepted and equals Kish on the unit-weight test split."""
    cfg = load_config(
        write_config(
            tmp_path / "c.yaml",
            {"taggers": {"evaluation": {"error_count": "unweighted", "bootstrap": 0}}},
        )
    )
    res = evaluate(
        cfg,
        pipeline["out"] / "test.h5",
        pipeline["models"],
        tmp_path / "out",
        plots=False,
        benchmark=False,
    )
    ref = json.loads((pipeline["out"] / "results.json").read_text())
    for t in ("ip3d", "dl1"):
        a = res.taggers[t].working_points["77"]
        b = ref["taggers"][t]["working_points"]["77"]
        assert a.rejection["light"].err == pytest.approx(b["light_rejection_err"])
    assert res.error_count == "unweighted" and res.to_dict()["definitions"]["error_count"] == "unweighted"
    assert res.to_dict()["bootstrap"] == {} and res.ratios["rnnip"]["77"]["light"].error_bootstrap is None


def test_results_are_the_written_files(pipeline, tmp_path: Path) -> None:
    """The returned :class:`TaggerPerformance` holds what results.json and working_points.json
    hold (without the provenance, timing and inference the stage adds), and the numbers of the
    pipeline's own evaluation."""
    perf = evaluate(load_config(pipeline["config"]), pipeline["out"] / "test.h5", pipeline["models"],
                    tmp_path, plots=False, benchmark=False)
    assert isinstance(perf, TaggerPerformance)
    results = json.loads((tmp_path / RESULTS_FILE).read_text())
    wps = json.loads((tmp_path / WP_FILE).read_text())
    mem = json.loads(json.dumps(perf.to_dict()))
    # the stage adds the provenance, timing, inference rates, plots and its other files' paths
    added = ("provenance", "timing", "inference", "plots", "plots_puma", "scores_file", "correctionlib_file")
    assert {k: v for k, v in results.items() if k not in added} == mem
    assert {k: v for k, v in wps.items() if k not in ("provenance", "format", "files")} == perf.working_points_dict()
    ref = json.loads((pipeline["out"] / RESULTS_FILE).read_text())
    assert {k: v for k, v in ref.items() if k not in added} == mem
    dl1 = perf.taggers["dl1"]
    assert dl1.variable == "Jet_btag_dl1" and dl1.fc == pytest.approx(0.018)
    assert dl1.working_points["70"].light_rejection == ref["taggers"]["dl1"]["working_points"]["70"]["light_rejection"]
    assert dl1.efficiency_vs_pt.bins["70"]["b"].n.sum() > 0
    assert perf.rnnip_over_ip3d is not None and perf.headline_wp == "70"
    assert perf.histograms["ip3d"]["b"].sum(flow=True).value == perf.sample.flavours["b"].sum_weights
    assert "| dl1 |" in summary_table(perf)


def test_a_subset_of_taggers(pipeline, tmp_path: Path) -> None:
    """``taggers=`` evaluates (and loads) only the taggers asked for, with the same numbers."""
    cfg = load_config(pipeline["config"])
    models = load_models(pipeline["models"], cfg.taggers, taggers=("ip3d", "rnnip"))
    assert models.taggers == ("ip3d", "rnnip") and models.mv2 is None and models.dl1 is None
    assert set(models.templates) == {"ip3d"} and set(models.provenance["files"]) == {"rnnip", "ip3d"}
    test = read_split(pipeline["out"] / "test.h5")
    perf = evaluate_dataset(test, models, cfg.taggers, seed=cfg.seed)
    assert list(perf.taggers) == ["ip3d", "rnnip"]
    full = json.loads((pipeline["out"] / RESULTS_FILE).read_text())
    for t in ("ip3d", "rnnip"):
        assert json.loads(json.dumps(perf.taggers[t].to_dict())) == full["taggers"][t]
    assert perf.ratios["rnnip"]["70"]["light"].value == full["ratios_to_reference"]["rnnip"]["70"]["light"]["value"]
    with pytest.raises(MissingModelError, match="dl1"):
        evaluate_dataset(test, models, cfg.taggers, ("dl1",), seed=cfg.seed)
    only_dl1 = evaluate(cfg, pipeline["out"] / "test.h5", pipeline["models"], tmp_path, plots=True,
                        benchmark=False, taggers=["dl1"])
    assert list(only_dl1.taggers) == ["dl1"] and only_dl1.ratios == {}
    assert set(json.loads((tmp_path / WP_FILE).read_text())["taggers"]) == {"dl1"}
    assert sorted(p.name for p in (tmp_path / "plots").iterdir() if p.suffix == ".png") == [
        "discriminants.png", "light_rejection_vs_pt.png"]
