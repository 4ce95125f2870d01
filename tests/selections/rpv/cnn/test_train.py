"""Training: a tiny network must beat a shuffled-label control; resume; weights; bad input;
and the evaluation against a cut-based selection on the same events."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import roc_auc_score

from analysis.cli import main
from analysis.core.config import CaloConfig, Config, RpvConfig, config_hash, load_config
from analysis.core.provenance import file_identity, read_provenance
from selections.rpv.cnn.bench import benchmark
from selections.rpv.cnn.images import CaloInputError, ImageSet, ImageSpec, build_sparse, write_images
from selections.rpv.cnn.model import load_model
from selections.rpv.cnn.train import balanced_weights, predict, train, train_model
from selections.rpv.compare import (
    compare,
    compare_at_cut_point,
    cut_flags_for,
    limit_score_edges,
    tpr_at_fpr,
    weighted_roc,
)
from selections.rpv.cuts import COLUMNS, read_table, write_table
from selections.rpv.samples import ZeroWeightError
from tests.fixtures.paths import DEFAULT_CONFIG

SPEC = ImageSpec(16, 16, -3.2, 3.2)
SPLIT_DICT = {"modulus": 10, "train": [0, 1, 2, 3, 4, 5], "validation": [6], "test": [7, 8, 9]}
BASE = load_config(DEFAULT_CONFIG)


def _cfg(**training) -> Config:
    calo = CaloConfig.validated({
        "image": {"n_eta": SPEC.n_eta, "n_phi": SPEC.n_phi},
        "split": SPLIT_DICT,
        "model": {"filters": 4, "dense": 16, "dropout": 0.1},
        "training": {"batch_size": 32, "max_epochs": 6, "patience": 3, "threads": 1,
                     "learning_rate": 0.01, **training},
        "evaluation": {"bootstrap": 20, "score_bins": 10, "limit_min_background_events": 5},
    })
    rpv = RpvConfig.validated({"signal_samples": ["sig"], "background_samples": ["bkg_lo", "bkg_hi"]})
    return BASE.replace(seed=7, calo=calo, rpv=rpv)


SPLIT = _cfg().calo.split


def _splits(data: ImageSet) -> tuple[ImageSet, ImageSet]:
    return data.split(SPLIT, "train"), data.split(SPLIT, "validation")


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


def _weighted_test_auc(model, normaliser, data: ImageSet) -> float:
    test = data.split(SPLIT, "test")
    score, _ = predict(model, test, normaliser, "cpu")
    return roc_auc_score(test.label, score, sample_weight=test.weight)


def test_tiny_training_beats_shuffled_label_control() -> None:
    data = _synthetic(400, np.random.default_rng(0))
    res = train(_cfg(max_epochs=10), *_splits(data), device="cpu", progress=False)
    assert res.n_train == 240 and res.n_validation == 40
    assert res.train_images_per_s > 0 and res.history[0]["val_loss"] > res.best_val_loss
    auc = _weighted_test_auc(res.model, res.normaliser, data)

    shuffled = data.take(np.arange(len(data)))
    shuffled.label = np.random.default_rng(1).permutation(shuffled.label)
    ctrl = train(_cfg(max_epochs=10), *_splits(shuffled), device="cpu", progress=False)
    auc_ctrl = _weighted_test_auc(ctrl.model, ctrl.normaliser, data)  # evaluated with the true labels
    assert auc > 0.9, auc
    assert auc - auc_ctrl > 0.25, (auc, auc_ctrl)
    assert res.normalisation.fitted_on == {"split": "train", "samples": data.samples, "n_images": 240}


def test_history_and_the_run_hash() -> None:
    """history.json: the training summary, one record per epoch (with the core's cpu_seconds)
    and the normalisation; the run hash of the typed config is the hash of the config dicts."""
    data = _synthetic(120, np.random.default_rng(5))
    cfg = _cfg(max_epochs=2)
    tr, va = _splits(data)
    res = train(cfg, tr, va, device="cpu", progress=False)
    d = res.to_dict()
    assert list(d) == ["device", "torch_threads", "seed", "config_hash", "n_train", "n_validation",
                       "train_per_sample", "epochs_run", "resumed_from_epoch", "best_epoch", "best_val_loss",
                       "stopped_early", "train_images_per_s", "model_parameters", "history", "normalisation"]
    assert res.info() == {k: v for k, v in d.items() if k not in ("history", "normalisation")}
    assert [set(h) for h in d["history"]] == [
        {"epoch", "train_loss", "val_loss", "seconds", "cpu_seconds", "images_per_s"}] * 2
    assert d["seed"] == 7 and d["torch_threads"] == 1 and d["epochs_run"] == 2
    assert d["train_per_sample"] == {s: int(np.sum(tr.sample_id == i)) for i, s in enumerate(tr.samples)}
    assert d["train_images_per_s"] == float(np.median([h["images_per_s"] for h in d["history"]]))
    assert d["model_parameters"] == sum(p.numel() for p in res.model.parameters())
    raw = cfg.calo.to_dict()
    assert d["config_hash"] == config_hash({
        "model": raw["model"], "training": {k: v for k, v in raw["training"].items() if k not in ("threads", "max_epochs")},
        "image": raw["image"], "split": raw["split"], "normalisation": d["normalisation"]["scale"],
        "seed": 7, "data": [len(tr), float(tr.weight.sum()), len(va)]})
    # the seed override and calo.training.seed
    assert train(cfg, tr, va, seed=3, device="cpu", progress=False).seed == 3
    with_seed = cfg.replace(calo=cfg.calo.replace(training=cfg.calo.training.replace(seed=11)))
    assert train(with_seed, tr, va, device="cpu", progress=False).seed == 11


def test_interrupted_training_resumes_to_the_same_weights(tmp_path) -> None:
    data = _synthetic(160, np.random.default_rng(2))
    cfg = _cfg(max_epochs=3, patience=5)
    tr, va = _splits(data)
    full = train(cfg, tr, va, checkpoint=tmp_path / "full.ckpt.pt", device="cpu", progress=False)

    class Stop(Exception):
        pass

    def stop_after_first(epoch, record):
        if epoch == 0:
            raise Stop

    ckpt = tmp_path / "cut.ckpt.pt"
    with pytest.raises(Stop):
        train(cfg, tr, va, checkpoint=ckpt, device="cpu", progress=False, on_epoch_end=stop_after_first)
    assert ckpt.is_file()
    resumed = train(cfg, tr, va, checkpoint=ckpt, device="cpu", progress=False)
    assert resumed.fit.resumed_from_epoch == 0 and resumed.epochs_run == 3
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=0)
    # a finished run is extended by raising max_epochs: it continues after its last epoch
    longer = train(_cfg(max_epochs=4, patience=5), tr, va, checkpoint=ckpt, device="cpu", progress=False)
    assert longer.fit.resumed_from_epoch == 2 and longer.epochs_run == 4
    # another setting starts afresh
    other = train(_cfg(max_epochs=1, patience=5, learning_rate=0.02), tr, va, checkpoint=ckpt, device="cpu",
                  progress=False)
    assert other.fit.resumed_from_epoch is None and other.epochs_run == 1


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
        train(_cfg(), *_splits(zero), device="cpu", progress=False)
    with pytest.raises(CaloInputError, match="has no background events"):
        train(_cfg(), *_splits(data.take(data.label == 1)), device="cpu", progress=False)


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
    assert res.cut_based.tpr == 0.5 and res.cut_based.fpr == pytest.approx(0.01)
    assert res.cut_based.n_signal_pass == 2 and res.cut_based.n_background_pass == 1
    assert res.cnn_at_cut_fpr.tpr == 1.0 and res.cnn_at_cut_fpr.threshold == 0.6 and res.tpr_ratio == pytest.approx(2.0)
    assert res.bootstrap is not None and res.bootstrap.replicas > 30 and res.bootstrap.err > 0
    d = res.to_dict()
    assert d["tpr_ratio_err_bootstrap"] == res.bootstrap.err and d["bootstrap_replicas"] == res.bootstrap.replicas
    assert d["cut_based"] == {"tpr": 0.5, "tpr_err": res.cut_based.tpr_err, "fpr": res.cut_based.fpr,
                              "fpr_err": res.cut_based.fpr_err, "n_background_pass": 1, "n_signal_pass": 2}
    assert "bootstrap_replicas" not in compare_at_cut_point(score, label, weight, cut, bootstrap=0).to_dict()


def test_limit_bins_hold_enough_background_from_the_top() -> None:
    bkg = np.linspace(0.0, 0.5, 101)[::-1]  # 101 background scores, highest 0.5
    edges = limit_score_edges(bkg, 10)
    counts = np.histogram(bkg, bins=edges)[0][::-1]  # from the top bin down
    assert edges[0] == 0.0 and edges[-1] == 1.0
    assert counts[0] == 10 and counts[1] == 20 and counts[2] == 40  # 10, 20, 40, then the rest
    assert counts.sum() == 101 and (counts >= 10).all()


def _files(data: ImageSet, tmp_path: Path) -> tuple[list[Path], list[Path]]:
    """One image file and one cut-based table per sample of ``data`` (the cuts: event % 3 == 0
    for the signal, the last event of each background)."""
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
    return files, tables


def test_evaluate_writes_summary_histograms_and_plots(tmp_path) -> None:
    """``hepline calo train`` and ``hepline calo evaluate`` on files; the summary is what
    :func:`compare` computes in memory."""
    data = _synthetic(200, np.random.default_rng(4))
    cfg = _cfg(max_epochs=2)
    files, tables = _files(data, tmp_path)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(cfg.to_dict()))
    assert main(["calo", "train", "--config", str(config_file), "--output-dir", str(tmp_path / "model"),
                 "--device", "cpu", "-q", *map(str, files)]) == 0
    assert main(["calo", "evaluate", "--config", str(config_file), "--model", str(tmp_path / "model" / "calo_cnn.pt"),
                 "--normalisation", str(tmp_path / "model" / "normalisation.json"), "--output-dir",
                 str(tmp_path / "eval"), "--device", "cpu", "--images", *map(str, files),
                 "--cut-tables", *map(str, tables)]) == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
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
    assert summary["model"]["path"] == str(tmp_path / "model" / "calo_cnn.pt")
    assert summary["model"]["model_cfg"] == cfg.calo.model.to_dict() and summary["model"]["n_train"] == 120

    # the same in memory, from the model file's network
    loaded = load_model(tmp_path / "model" / "calo_cnn.pt")
    test = ImageSet.concat([data.take(data.sample_id == i) for i in range(3)]).split(SPLIT, "test")
    cut_pass = cut_flags_for(test, {t.sample: t.columns for t in map(read_table, tables)})
    mem = compare(cfg, loaded.model, loaded.normaliser, test, cut_pass, device="cpu")
    d = mem.to_dict()
    assert "model" not in d and mem.limits is not None
    assert {k: v for k, v in summary.items() if k not in ("model", "inference")} == \
        json.loads(json.dumps({k: v for k, v in d.items() if k != "inference"}))
    np.testing.assert_array_equal(np.load(tmp_path / "eval" / "roc.npz")["fpr"], mem.fpr)

    for name in ("summary.json", "scores.root", "roc.png", "scores.png", "example_images.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    for name in ("summary.json", "scores.root", "roc.npz", "roc.png", "scores.png", "example_images.png"):
        rec = read_provenance(tmp_path / "eval" / name)
        assert rec["stage"] == "calo.evaluate", name
        assert rec["inputs"][0] == file_identity(tmp_path / "model" / "calo_cnn.pt"), name
    for name in ("calo_cnn.pt", "history.json", "normalisation.json"):
        rec = read_provenance(tmp_path / "model" / name)
        assert rec["stage"] == "calo.train" and rec["seeds"] == {"training": cfg.seed}, name
        assert [i["path"] for i in rec["inputs"]] == [str(f) for f in files], name
    history = json.loads((tmp_path / "model" / "history.json").read_text())
    assert history["n_train"] == loaded.info["n_train"] == 120
    import uproot

    with uproot.open(tmp_path / "eval" / "scores.root") as f:
        h = f["score_bkg_lo"].to_hist()
        # expected events of the whole sample at the luminosity: sigma * L
        assert h.sum().value == pytest.approx(1000.0 * 36.1 * 1000.0, rel=1e-6)
    # a test event without a cut-based entry is an error
    write_table(tables[0], {c: np.zeros(1) for c in COLUMNS} | {"sr": np.zeros(1, bool), "event": np.zeros(1, np.uint64)},
                {"sample": "sig"})
    from selections.rpv.compare import evaluate

    with pytest.raises(CaloInputError, match="the cut-based table of 'sig' lacks"):
        evaluate(cfg, tmp_path / "model" / "calo_cnn.pt", files, tables, tmp_path / "eval2", device="cpu")


def test_train_model_seed_flag_and_benchmark(tmp_path) -> None:
    """``train_model`` reads the splits from the files (same network as in memory); ``--seed``
    of ``hepline calo train`` is the training seed; the benchmark measures every rate."""
    data = _synthetic(200, np.random.default_rng(6))
    cfg = _cfg(max_epochs=1)
    files, _ = _files(data, tmp_path)
    from_files = train_model(cfg, files, tmp_path / "m", device="cpu", progress=False)
    tr, va = _splits(ImageSet.concat([data.take(data.sample_id == i) for i in range(3)]))
    in_memory = train(cfg, tr, va, device="cpu", progress=False)
    for k, v in in_memory.model.state_dict().items():
        torch.testing.assert_close(from_files.model.state_dict()[k], v, rtol=0, atol=0)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(cfg.to_dict()))
    assert main(["calo", "train", "--config", str(config_file), "--output-dir", str(tmp_path / "s"), "--device", "cpu",
                 "--seed", "5", "--threads", "1", "-q", *map(str, files)]) == 0
    assert json.loads((tmp_path / "s" / "history.json").read_text())["seed"] == 5

    bench = benchmark(cfg, data, device="cpu", batches=2)
    d = bench.to_dict()
    assert d["batch_size"] == 32 and d["timed_train_images"] == 64 and d["inference_images"] == 64
    assert min(d["loader_images_per_s"], d["train_images_per_s"], d["inference_images_per_s"]) > 0
    assert d["model_cfg"] == cfg.calo.model.to_dict() and d["image"] == SPEC.to_dict()
    assert benchmark(cfg, data, device="cpu", batches=2, filters=2).model_cfg.filters == 2
    with pytest.raises(CaloInputError, match="benchmark needs 320 images"):
        benchmark(cfg, data, device="cpu", batches=9)


def test_a_network_on_merged_pixels_scores_the_files_grid(tmp_path) -> None:
    """calo.model.input_rebin = 2: the network is built for 8 x 8 images and trained on 16 x 16
    ones with 2 x 2 pixels summed; scoring the 16 x 16 test images merges them the same way."""
    data = _synthetic(200, np.random.default_rng(9))
    cfg = _cfg(max_epochs=1)
    cfg = cfg.replace(calo=cfg.calo.replace(model=cfg.calo.model.replace(input_rebin=2)))
    res = train(cfg, *_splits(data), device="cpu", progress=False)
    assert res.model.spec == SPEC.rebinned(2)
    test = data.split(SPLIT, "test")
    fine, _ = predict(res.model, test, res.normaliser, "cpu")
    coarse, _ = predict(res.model, test.rebin(2), res.normaliser, "cpu")
    np.testing.assert_array_equal(fine, coarse)
    files, _ = _files(data, tmp_path)
    train_model(cfg, files, tmp_path / "m", device="cpu", progress=False)
    loaded = load_model(tmp_path / "m" / "calo_cnn.pt")
    assert loaded.model_cfg.input_rebin == 2 and loaded.model.spec == SPEC.rebinned(2)
