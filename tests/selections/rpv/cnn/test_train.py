"""Training: a tiny network must beat a shuffled-label control; resume; weights; bad input;
and the evaluation against a cut-based selection on the same events."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from selections.rpv.compare import (
    compare_at_cut_point,
    evaluate,
    limit_score_edges,
    tpr_at_fpr,
    weighted_roc,
)
from selections.rpv.cnn.images import (
    CaloInputError,
    ImageSet,
    ImageSpec,
    ZeroWeightError,
    build_sparse,
    write_images,
)
from selections.rpv.cnn.model import load_model
from selections.rpv.cnn.train import balanced_weights, predict, train
from selections.rpv.cuts import COLUMNS, write_table

SPEC = ImageSpec(16, 16, -3.2, 3.2)
SPLIT = {"modulus": 10, "train": [0, 1, 2, 3, 4, 5], "validation": [6], "test": [7, 8, 9]}


def _cfg(**training) -> dict:
    return {
        "seed": 7,
        "calo": {
            "image": {"n_eta": SPEC.n_eta, "n_phi": SPEC.n_phi},
            "split": SPLIT,
            "model": {"filters": 4, "dense": 16, "dropout": 0.1},
            "training": {"batch_size": 32, "max_epochs": 6, "patience": 3, "threads": 1,
                         "learning_rate": 0.01, **training},
            "evaluation": {"bootstrap": 20, "score_bins": 10, "limit_min_background_events": 5},
        },
        "rpv": {"signal_samples": ["sig"], "background_samples": ["bkg_lo", "bkg_hi"]},
    }


def _synthetic(n: int, rng: np.random.Generator) -> ImageSet:
    """'Signal' events have 4 energy clusters, 'background' 2 (two slices of different sigma)."""
    label = (rng.random(n) < 0.5).astype(np.int8)
    ncl = np.where(label == 1, 4, 2)
    ev = np.repeat(np.arange(n), ncl * 5)
    ceta = rng.uniform(-2.5, 2.5, ncl.sum())
    cphi = rng.uniform(-np.pi, np.pi, ncl.sum())
    off = np.array([(0, 0), (0.2, 0), (-0.2, 0), (0, 0.2), (0, -0.2)])
    eta = np.repeat(ceta, 5) + np.tile(off[:, 0], ncl.sum())
    phi = np.repeat(cphi, 5) + np.tile(off[:, 1], ncl.sum())
    e = rng.exponential(40.0, eta.size)
    sp = build_sparse(n, SPEC, ev, eta, phi, 0.3 * e, 0.7 * e, ev[::5], eta[::5], phi[::5])
    sample = np.where(label == 1, 0, np.where(rng.random(n) < 0.5, 1, 2)).astype(np.int16)
    weight = np.array([0.01, 100.0, 3.0])[sample]  # sigma/sumw-like weights of three samples
    return ImageSet(sp, np.arange(1, n + 1, dtype=np.uint64), label, weight, np.ones(n, np.float32),
                    sample, ["sig", "bkg_lo", "bkg_hi"],
                    {"sig": {"xsec_pb": 1.0}, "bkg_lo": {"xsec_pb": 1000.0}, "bkg_hi": {"xsec_pb": 30.0}})


def _weighted_test_auc(model, norm, data: ImageSet) -> float:
    test = data.split(SPLIT, "test")
    score, _ = predict(model, test, norm, "cpu")
    return roc_auc_score(test.label, score, sample_weight=test.weight)


def test_tiny_training_beats_shuffled_label_control(tmp_path) -> None:
    data = _synthetic(400, np.random.default_rng(0))
    res = train(_cfg(max_epochs=10), data, tmp_path / "real", device="cpu", progress=False)
    assert res["n_train"] == 240 and res["n_validation"] == 40
    assert res["train_images_per_s"] > 0 and res["history"][0]["val_loss"] > res["best_val_loss"]
    model, norm, _ = load_model(tmp_path / "real" / "calo_cnn.pt")
    auc = _weighted_test_auc(model, norm, data)

    shuffled = data.take(np.arange(len(data)))
    shuffled.label = np.random.default_rng(1).permutation(shuffled.label)
    train(_cfg(max_epochs=10), shuffled, tmp_path / "ctrl", device="cpu", progress=False)
    ctrl_model, ctrl_norm, _ = load_model(tmp_path / "ctrl" / "calo_cnn.pt")
    auc_ctrl = _weighted_test_auc(ctrl_model, ctrl_norm, data)  # evaluated with the true labels
    assert auc > 0.9, auc
    assert auc - auc_ctrl > 0.25, (auc, auc_ctrl)
    saved = json.loads((tmp_path / "real" / "normalisation.json").read_text())
    assert saved["fitted_on"]["split"] == "train" and saved["fitted_on"]["n_images"] == 240


def test_interrupted_training_resumes_to_the_same_weights(tmp_path) -> None:
    data = _synthetic(160, np.random.default_rng(2))
    cfg = _cfg(max_epochs=3, patience=5)
    full = train(cfg, data, tmp_path / "full", device="cpu", progress=False)

    class Stop(Exception):
        pass

    def stop_after_first(epoch, record):
        if epoch == 0:
            raise Stop

    with pytest.raises(Stop):
        train(cfg, data, tmp_path / "cut", device="cpu", progress=False, on_epoch_end=stop_after_first)
    assert (tmp_path / "cut" / "calo_cnn.ckpt.pt").is_file() and not (tmp_path / "cut" / "calo_cnn.pt").exists()
    resumed = train(cfg, data, tmp_path / "cut", device="cpu", progress=False)
    assert resumed["resumed_from_epoch"] == 0 and resumed["epochs_run"] == 3
    for k, v in full["model"].state_dict().items():
        torch.testing.assert_close(resumed["model"].state_dict()[k], v, rtol=0, atol=0)
    # a finished run is extended by raising max_epochs: it continues after its last epoch
    longer = train(_cfg(max_epochs=4, patience=5), data, tmp_path / "cut", device="cpu", progress=False)
    assert longer["resumed_from_epoch"] == 2 and longer["epochs_run"] == 4
    # another setting starts afresh
    other = train(_cfg(max_epochs=1, patience=5, learning_rate=0.02), data, tmp_path / "cut", device="cpu",
                  progress=False)
    assert other["resumed_from_epoch"] is None and other["epochs_run"] == 1


def test_balanced_weights_keep_the_slice_ratios() -> None:
    w = np.array([0.01, 0.01, 100.0, 3.0, 3.0])
    y = np.array([1, 1, 0, 0, 0])
    b = balanced_weights(w, y)
    assert b[y == 1].sum() == pytest.approx(2.5) and b[y == 0].sum() == pytest.approx(2.5)
    assert b[2] / b[3] == pytest.approx(100.0 / 3.0) and b.mean() == pytest.approx(1.0)


def test_training_bad_inputs(tmp_path) -> None:
    data = _synthetic(80, np.random.default_rng(3))
    zero = data.take(np.arange(len(data)))
    zero.weight = np.where(zero.label == 0, 0.0, zero.weight)
    with pytest.raises(ZeroWeightError, match=r"background events \(samples \['bkg_hi', 'bkg_lo'\]\) have a total weight of 0"):
        train(_cfg(), zero, tmp_path / "z", device="cpu", progress=False)
    with pytest.raises(CaloInputError, match="has no background events"):
        train(_cfg(), data.take(data.label == 1), tmp_path / "s", device="cpu", progress=False)


def test_tpr_at_fpr_and_ratio_on_known_scores() -> None:
    # 4 signal (w=1), 4 background (w=1,1,1,97): perfect CNN; the cuts keep 2 signal and the w=1
    # background event with the highest score
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    label = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    weight = np.array([1, 1, 1, 1, 1, 1, 1, 97.0])
    cut = np.array([1, 1, 0, 0, 1, 0, 0, 0], bool)
    fpr, tpr, thr = weighted_roc(score, label, weight)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and fpr[-1] == tpr[-1] == 1.0
    assert tpr_at_fpr(fpr, tpr, thr, 0.0) == (1.0, 0.0, 0.6)
    assert tpr_at_fpr(fpr, tpr, thr, 0.02)[:2] == (1.0, 0.0)  # same TPR, the lower FPR
    assert tpr_at_fpr(fpr, tpr, thr, 1.0) == (1.0, 0.0, 0.6)
    res = compare_at_cut_point(score, label, weight, cut, bootstrap=50)
    assert res["cut_based"]["tpr"] == 0.5 and res["cut_based"]["fpr"] == pytest.approx(0.01)
    assert res["cnn_at_cut_fpr"]["tpr"] == 1.0 and res["tpr_ratio"] == pytest.approx(2.0)
    assert res["bootstrap_replicas"] > 30 and res["tpr_ratio_err_bootstrap"] > 0


def test_limit_bins_hold_enough_background_from_the_top() -> None:
    bkg = np.linspace(0.0, 0.5, 101)[::-1]  # 101 background scores, highest 0.5
    edges = limit_score_edges(bkg, 10)
    counts = np.histogram(bkg, bins=edges)[0][::-1]  # from the top bin down
    assert edges[0] == 0.0 and edges[-1] == 1.0
    assert counts[0] == 10 and counts[1] == 20 and counts[2] == 40  # 10, 20, 40, then the rest
    assert counts.sum() == 101 and (counts >= 10).all()


def test_evaluate_writes_summary_histograms_and_plots(tmp_path) -> None:
    data = _synthetic(200, np.random.default_rng(4))
    cfg = _cfg(max_epochs=2)
    files, tables = [], []
    for i, s in enumerate(data.samples):
        part = data.take(data.sample_id == i)
        part.sample_id[:] = 0
        part.samples, part.sample_info = [s], {s: data.sample_info[s]}
        files.append(tmp_path / f"{s}.h5")
        write_images(files[-1], part)
        n = len(part)
        table = {c: np.zeros(n) for c in COLUMNS}
        table.update(event=part.event, label=part.label, weight=part.weight,
                     sr=(part.event % 3 == 0) if s == "sig" else (part.event == part.event.max()))
        tables.append(tmp_path / f"cut_{s}.h5")
        write_table(tables[-1], table, {"sample": s})
    train(cfg, files, tmp_path / "model", device="cpu", progress=False)
    summary = evaluate(cfg, tmp_path / "model" / "calo_cnn.pt", files, tables, tmp_path / "eval", device="cpu",
                       normalisation=tmp_path / "model" / "normalisation.json")
    assert 0.5 < summary["auc"] <= 1.0
    assert summary["test_events"]["signal"] + summary["test_events"]["background"] == 60
    assert summary["cut_based"]["n_signal_pass"] == sum(
        1 for e in data.event[(data.label == 1) & np.isin(data.event % 10, [7, 8, 9])] if e % 3 == 0)
    # expected limits through analysis.stats.limits (pyhf): 5 numbers (-2s .. +2s), increasing, for both
    lim = summary["expected_limits"]["sig"]
    for kind in ("cnn", "cut_based"):
        xs = lim[kind]["expected_xsec_pb"]
        assert len(xs) == 5 and xs[0] > 0 and all(a <= b for a, b in itertools.pairwise(xs)), lim
    assert lim["cut_over_cnn_median"] > 0
    edges = summary["expected_limits"]["cnn_score_edges"]
    assert edges[0] == 0.0 and edges[-1] == 1.0 and len(edges) >= 3
    for name in ("summary.json", "scores.root", "roc.png", "scores.png", "example_images.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    from analysis.core.provenance import file_identity, read_provenance

    for name in ("summary.json", "scores.root", "roc.npz", "roc.png", "scores.png", "example_images.png"):
        rec = read_provenance(tmp_path / "eval" / name)
        assert rec["stage"] == "calo.evaluate", name
        assert rec["inputs"][0] == file_identity(tmp_path / "model" / "calo_cnn.pt"), name
    for name in ("calo_cnn.pt", "history.json", "normalisation.json"):
        rec = read_provenance(tmp_path / "model" / name)
        assert rec["stage"] == "calo.train" and rec["seeds"] == {"training": cfg["seed"]}, name
        assert [i["path"] for i in rec["inputs"]] == [str(f) for f in files], name
    import uproot

    with uproot.open(tmp_path / "eval" / "scores.root") as f:
        h = f["score_bkg_lo"].to_hist()
        # expected events of the whole sample at the luminosity: sigma * L
        assert h.sum().value == pytest.approx(1000.0 * 36.1 * 1000.0, rel=1e-6)
    # a test event without a cut-based entry is an error
    write_table(tables[0], {c: np.zeros(1) for c in COLUMNS} | {"sr": np.zeros(1, bool), "event": np.zeros(1, np.uint64)},
                {"sample": "sig"})
    with pytest.raises(CaloInputError, match="the cut-based table of 'sig' lacks"):
        evaluate(cfg, tmp_path / "model" / "calo_cnn.pt", files, tables, tmp_path / "eval2", device="cpu")
