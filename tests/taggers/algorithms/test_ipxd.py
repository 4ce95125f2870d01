"""IP2D/IP3D templates: normalisation, persistence, separation power and a label-shuffle control."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from analysis.core.config.taggers import TaggersConfig
from analysis.core.errors import InputError
from taggers.dataset import reweight
from taggers.features import TaggingDataset
from taggers.algorithms.ipxd import HYPOTHESES, IPTemplates, evaluate, fit_templates


def _cross_fit(ds: TaggingDataset, cfg: TaggersConfig, kind: str, labels: np.ndarray) -> np.ndarray:
    """Out-of-sample ``{kind}_log_pb_pu`` for every jet: templates filled on the jets of odd
    events score the even ones and vice versa (every jet is scored by templates that never
    saw it). ``labels`` replace the true labels for the fit."""
    score = np.zeros(len(ds), dtype=np.float64)
    odd = (ds.jets["event"] % 2).astype(bool)
    for fit_mask in (odd, ~odd):
        train = ds.subset(fit_mask)
        train.jets["label"] = labels[fit_mask]
        train = reweight(train, cfg.reweighting)
        tpl = fit_templates(train, cfg, kind)
        score[~fit_mask] = evaluate(tpl, ds.subset(~fit_mask))[f"{kind}_log_pb_pu"]
    return score


@pytest.mark.parametrize("kind", ["ip2d", "ip3d"])
def test_templates_normalise_per_grade_and_flavour(ttbar_splits, cfg: TaggersConfig, kind: str) -> None:
    tpl = fit_templates(ttbar_splits.train, cfg, kind)
    kcfg = getattr(cfg, kind)
    n_bins = [len(getattr(kcfg, f"{v}_edges")) - 1 for v in tpl.variables]
    assert tpl.prob.shape == (3, cfg.tracks.n_grades, *n_bins)
    sums = tpl.prob.reshape(3, cfg.tracks.n_grades, -1).sum(axis=-1)
    assert np.allclose(sums, 1.0, atol=1e-12)
    assert np.all(tpl.prob > 0)  # the floor leaves no empty bin
    # the b template of good tracks puts more weight on large positive sd0 than light's
    b, u = HYPOTHESES.index(5), HYPOTHESES.index(0)
    pos = np.asarray(kcfg.sd0_edges)[:-1] >= 3
    pb, pu = tpl.prob[b, 0], tpl.prob[u, 0]
    if kind == "ip3d":  # marginal in sd0
        pb, pu = pb.sum(axis=1), pu.sum(axis=1)
    assert pb[pos].sum() > 3 * pu[pos].sum()


def test_outputs_and_jets_without_tracks(ttbar_splits, cfg: TaggersConfig, tmp_path) -> None:
    tpl = fit_templates(ttbar_splits.train, cfg, "ip3d")
    test = ttbar_splits.test
    out = evaluate(tpl, test)
    assert set(out) == {
        f"ip3d_{k}" for k in ("log_pb_pu", "log_pb_pc", "log_pc_pu", "pb", "pc", "pu")
    }
    for v in out.values():
        assert v.shape == (len(test),) and np.all(np.isfinite(v))
    assert np.allclose(out["ip3d_pb"] + out["ip3d_pc"] + out["ip3d_pu"], 1, atol=1e-5)
    assert np.allclose(
        out["ip3d_log_pb_pu"], out["ip3d_log_pb_pc"] + out["ip3d_log_pc_pu"], atol=1e-4
    )
    assert np.allclose(np.log(out["ip3d_pb"] / out["ip3d_pu"]), out["ip3d_log_pb_pu"], atol=1e-3)
    # a jet without tracks: all log-ratios 0, equal probabilities
    empty = test.subset(np.arange(3))
    for k in empty.tracks:
        empty.tracks[k][0] = -1 if empty.tracks[k].dtype == np.int8 else 0
    empty.jets["n_tracks"][0] = 0
    e = evaluate(tpl, empty)
    assert (
        e["ip3d_log_pb_pu"][0] == 0 and e["ip3d_log_pb_pc"][0] == 0 and e["ip3d_log_pc_pu"][0] == 0
    )
    assert np.allclose([e["ip3d_pb"][0], e["ip3d_pc"][0], e["ip3d_pu"][0]], 1 / 3)
    assert empty.jets["n_tracks"][1:].min() > 0 and np.any(e["ip3d_log_pb_pu"][1:] != 0)
    # save / load with the binning
    path = tmp_path / "ip3d.npz"
    tpl.save(path)
    back = IPTemplates.load(path)
    assert back.kind == "ip3d" and back.hypotheses == HYPOTHESES
    assert all(np.array_equal(a, b) for a, b in zip(back.edges, tpl.edges))
    assert np.array_equal(back.prob, tpl.prob)
    assert np.array_equal(evaluate(back, test)["ip3d_pb"], out["ip3d_pb"])
    assert not list(tmp_path.glob(".*tmp*"))


def test_ip3d_separates_b_from_light_and_shuffled_labels_do_not(
    ttbar_ds: TaggingDataset, cfg: TaggersConfig
) -> None:
    label = ttbar_ds.jets["label"]
    bl = np.isin(label, [5, 0])
    assert (label == 5).sum() > 200 and (label == 0).sum() > 500
    score = _cross_fit(ttbar_ds, cfg, "ip3d", label)
    auc = roc_auc_score(label[bl] == 5, score[bl])
    assert auc > 0.7, f"IP3D b-vs-light AUC {auc:.3f}"
    # control: templates filled with permuted labels carry no flavour information
    rng = np.random.default_rng(2024)
    aucs = [
        roc_auc_score(label[bl] == 5, _cross_fit(ttbar_ds, cfg, "ip3d", rng.permutation(label))[bl])
        for _ in range(4)
    ]
    assert abs(np.mean(aucs) - 0.5) < 0.05, f"shuffled-label AUCs {aucs}"
    assert auc - np.mean(aucs) > 0.2


def test_bad_grade_is_refused(ttbar_splits, cfg: TaggersConfig) -> None:
    ds = ttbar_splits.train.subset(slice(0, 50))
    row = int(np.argmax(ds.jets["n_tracks"] > 0))
    ds.tracks["grade"][row, 0] = 7
    with pytest.raises(InputError, match="grade outside"):
        fit_templates(ds, cfg, "ip2d")
