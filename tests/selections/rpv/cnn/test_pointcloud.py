"""The point-cloud comparator: it beats a shuffled-label control on a tiny sample; its points
are the non-zero pixels; augmentation moves them like the CNN's; the model file round-trips;
and the side-by-side throughput measures every network."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from analysis.core.config import CaloConfig, Config
from analysis.core.errors import ModelMismatchError
from selections.rpv.cnn.bench import network_throughput
from selections.rpv.cnn.images import ImageSet
from selections.rpv.cnn.pointcloud import (
    POINT_FEATURES,
    PointCloudLoader,
    load_point_cloud,
    predict_point_cloud,
    train_point_cloud,
    train_point_cloud_model,
)
from selections.rpv.cnn.train import train_model
from tests.selections.rpv.cnn.test_train import SPEC, _cfg, _files, _splits, _synthetic


def _pc_cfg(**point_cloud) -> Config:
    base = _cfg()
    pc = {"phi_layers": [32, 32], "f_layers": [32], "batch_size": 32, "max_epochs": 8, "patience": 3,
          "learning_rate": 0.005, "dropout": 0.0, **point_cloud}
    return base.replace(calo=CaloConfig.validated({**base.calo.to_dict(), "point_cloud": pc}))


def _auc(model, data: ImageSet) -> float:
    test = data.split(_cfg().calo.split, "test")
    score, rate = predict_point_cloud(model, test, "cpu")
    assert rate.images == len(test) and rate.images_per_s > 0
    return float(roc_auc_score(test.label, score, sample_weight=test.weight))


def test_point_cloud_beats_a_shuffled_label_control() -> None:
    """The same training on permuted labels (and equal weights) learns nothing of them: on its own
    test labels the control stays near 0.5. (Against the true labels a control's AUC is arbitrary:
    the summed point features make any network monotone in the multiplicity, which separates the
    synthetic classes.)"""
    data = _synthetic(600, np.random.default_rng(10))
    cfg = _pc_cfg()
    res = train_point_cloud(cfg, *_splits(data), device="cpu", progress=False)
    assert res.n_train == 360 and res.n_validation == 60 and res.fit.rate_per_s > 0
    assert res.fit.history[0]["val_loss"] > res.fit.best_val_loss
    auc = _auc(res.model, data)

    shuffled = data.take(np.arange(len(data)))
    shuffled.label = np.random.default_rng(11).permutation(shuffled.label)
    shuffled.weight = np.ones(len(shuffled))
    ctrl = train_point_cloud(cfg, *_splits(shuffled), device="cpu", progress=False)
    auc_ctrl = _auc(ctrl.model, shuffled)
    assert auc > 0.95, auc
    assert abs(auc_ctrl - 0.5) < 0.15 and auc - auc_ctrl > 0.3, (auc, auc_ctrl)


def test_points_are_the_non_zero_pixels_and_augmentation_moves_them() -> None:
    data = _synthetic(20, np.random.default_rng(12))
    loader = PointCloudLoader(data, batch_size=8, device="cpu")
    rows = torch.arange(3)
    b = loader.batch(rows)
    nnz = data.images.nnz[:3]
    assert b.x.shape == (int(nnz.sum()), len(POINT_FEATURES)) and b.n_points.tolist() == nnz.tolist()
    assert torch.equal(b.event, torch.repeat_interleave(rows, torch.from_numpy(nnz.astype(np.int64))))
    # the one-hot channel and the log value are those of the stored pixels
    ch = data.images.channel_of_entries()[: int(nnz.sum())]
    assert torch.equal(b.x[:, 3:6].argmax(1), torch.from_numpy(ch))
    torch.testing.assert_close(b.x[:, 6], torch.log1p(torch.from_numpy(data.images.value[: int(nnz.sum())])))
    # eta flip and a phi rotation by pi: eta -> -eta, (sin, cos) -> -(sin, cos); values unchanged
    aug = torch.tensor([[np.pi, 0.0, 1.0]] * 3, dtype=torch.float32)
    a = loader.batch(rows, aug)
    torch.testing.assert_close(a.x[:, 0], -b.x[:, 0])
    torch.testing.assert_close(a.x[:, 1:3], -b.x[:, 1:3], atol=1e-5, rtol=0)
    torch.testing.assert_close(a.x[:, 3:], b.x[:, 3:])
    # the whole set in shuffled batches covers every event once
    seen = torch.cat([bb.rows for bb in PointCloudLoader(data, batch_size=6, device="cpu", shuffle=True, seed=1)])
    assert sorted(seen.tolist()) == list(range(20))


def test_point_cloud_model_file_round_trip(tmp_path) -> None:
    data = _synthetic(200, np.random.default_rng(13))
    cfg = _pc_cfg(max_epochs=1)
    files, _ = _files(data, tmp_path)
    res = train_point_cloud_model(cfg, files, tmp_path / "pc", seed=4, device="cpu", progress=False)
    loaded = load_point_cloud(tmp_path / "pc" / "point_cloud.pt")
    assert loaded.cfg == cfg.calo.point_cloud and loaded.info["seed"] == 4
    test = data.split(cfg.calo.split, "test")
    np.testing.assert_array_equal(predict_point_cloud(loaded.model, test, "cpu")[0],
                                  predict_point_cloud(res.model, test, "cpu")[0])
    hist = json.loads((tmp_path / "pc" / "history.json").read_text())
    assert len(hist["history"]) == 1 and hist["model_parameters"] > 0
    train_model(cfg, files, tmp_path / "cnn", device="cpu", progress=False)
    with pytest.raises(ModelMismatchError, match="not a point-cloud model file"):
        load_point_cloud(tmp_path / "cnn" / "calo_cnn.pt")


def test_throughput_of_every_network_side_by_side() -> None:
    data = _synthetic(200, np.random.default_rng(14))
    rates = network_throughput(_pc_cfg(), data, device="cpu", batches=2)
    assert [r.network for r in rates] == ["cnn", "paper_cnn", "point_cloud"]
    for r in rates:
        assert r.train_images_per_s > 0 and r.inference_images_per_s > 0 and r.parameters > 0
    assert rates[0].timed_train_images == 64 and rates[2].timed_train_images == 64
    assert "128 filters" in rates[1].description and rates[1].parameters > rates[0].parameters
    assert f"{SPEC.n_eta} x {SPEC.n_phi}" in rates[0].description
