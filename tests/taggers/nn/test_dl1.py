"""DL1: shapes, separation on a synthetic high-level dataset with a shuffled control, feature
names stored and matched, save/load, bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from analysis.core.config.taggers import TaggerModelsConfig, TaggerModelsDl1, TaggersConfig
from analysis.core.errors import ModelMismatchError, NonFiniteInputError
from analysis.ml.normaliser import Normaliser
from tests.fixtures.taggers import HIGHLEVEL_NAMES, synthetic_highlevel, synthetic_tagging_dataset
from taggers.discriminant import discriminant_from_probs
from taggers.nn.dl1 import DL1, load_dl1, predict_dl1, train_dl1
from taggers.training import FeatureMatrix, MissingClassError, TaggerInputError


def dl1_cfg(**values: object) -> TaggerModelsDl1:
    """``tagger_models.dl1`` with ``values`` and the defaults."""
    return TaggerModelsConfig.validated({"dl1": values}).dl1


CFG = dl1_cfg(max_epochs=4, batch_size=256, seed=5)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("dl1")
    res = train_dl1(
        synthetic_highlevel(6000, seed=1),
        synthetic_highlevel(1500, seed=2),
        CFG,
        out,
        progress=False,
    )
    return res


def _auc(probs: np.ndarray, label: np.ndarray) -> float:
    sel = np.isin(label, [5, 0])
    return float(roc_auc_score(label[sel] == 5, discriminant_from_probs(probs[sel], 0.08)))


def _shuffled(fm: FeatureMatrix, rng: np.random.Generator) -> FeatureMatrix:
    return FeatureMatrix(fm.x, fm.names, rng.permutation(fm.label), fm.weight)


def test_shapes_and_layers() -> None:
    model = DL1(10)
    assert [m.out_features for m in model.hidden if isinstance(m, torch.nn.Linear)] == [
        64,
        48,
        36,
        24,
        12,
        6,
    ]
    paper = DL1(10, layers=[256, 128, 60, 48, 36, 24, 12, 6], dropout=0.0)
    assert paper(torch.randn(7, 10)).shape == (7, 4)
    x = np.random.default_rng(0).normal(size=(33, 10)).astype(np.float32)
    probs = predict_dl1(model.eval(), FeatureMatrix(x, [f"f{i}" for i in range(10)]))
    assert probs.shape == (33, 4)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-6)


def test_separation_and_shuffled_control(trained, tmp_path: Path) -> None:
    test = synthetic_highlevel(4000, seed=3)
    auc = _auc(predict_dl1(trained.model_path, test), test.label)
    assert auc > 0.75, auc
    rng = np.random.default_rng(1)
    ctrl = train_dl1(
        _shuffled(synthetic_highlevel(6000, seed=1), rng),
        _shuffled(synthetic_highlevel(1500, seed=2), rng),
        CFG,
        tmp_path,
        progress=False,
    )
    test_sh = _shuffled(test, rng)
    auc_ctrl = _auc(predict_dl1(ctrl.model, test_sh), test_sh.label)
    assert abs(auc_ctrl - 0.5) < 0.07, auc_ctrl


def test_feature_names_stored_and_matched(trained) -> None:
    model = load_dl1(trained.model_path)
    assert model.meta["feature_names"] == HIGHLEVEL_NAMES
    assert model.meta["normaliser"]["names"] == HIGHLEVEL_NAMES
    test = synthetic_highlevel(500, seed=4)
    ref = predict_dl1(model, test)
    # columns in another order are matched by name
    perm = np.random.default_rng(0).permutation(len(HIGHLEVEL_NAMES))
    shuffled_cols = FeatureMatrix(test.x[:, perm], [HIGHLEVEL_NAMES[i] for i in perm])
    np.testing.assert_array_equal(predict_dl1(model, shuffled_cols), ref)
    # a mapping of columns and a TaggingDataset's jet columns work too
    cols = {n: test.x[:, i] for i, n in enumerate(HIGHLEVEL_NAMES)}
    np.testing.assert_array_equal(predict_dl1(model, cols), ref)
    ds = synthetic_tagging_dataset(500, 15, seed=5).with_jet_fields(cols)
    np.testing.assert_array_equal(predict_dl1(trained.model_path, ds), ref)
    # a missing feature: mismatched model and feature file
    with pytest.raises(
        ModelMismatchError, match=r"mismatched model and feature file \(DL1\).*sv1_mass"
    ):
        predict_dl1(model, FeatureMatrix(test.x[:, :-8], HIGHLEVEL_NAMES[:-8]))
    with pytest.raises(ModelMismatchError, match="mismatched model and feature file"):
        load_dl1(trained.model_path, features=HIGHLEVEL_NAMES[::-1])
    with pytest.raises(ModelMismatchError, match="normaliser"):
        load_dl1(trained.model_path, normaliser=Normaliser.from_dict({"names": ["pt"], "mean": [0.0], "std": [1.0]}))


def test_bad_inputs(tmp_path: Path, trained) -> None:
    data = synthetic_highlevel(800, seed=6)
    x = data.x.copy()
    x[17, HIGHLEVEL_NAMES.index("sv1_lxy")] = np.nan
    with pytest.raises(NonFiniteInputError, match=r"DL1 test set: sv1_lxy holds 1 NaN/inf value\(s\), the first in jet 17$"):
        predict_dl1(trained.model, FeatureMatrix(x, data.names))
    with pytest.raises(NonFiniteInputError, match="sv1_lxy"):
        train_dl1(FeatureMatrix(x, data.names, data.label), None, CFG, tmp_path, progress=False)
    no_c = data.label != 4
    with pytest.raises(MissingClassError, match="'c'.*4"):
        train_dl1(
            FeatureMatrix(data.x[no_c], data.names, data.label[no_c]),
            None,
            CFG,
            tmp_path,
            progress=False,
        )
    with pytest.raises(TaggerInputError, match="empty"):
        predict_dl1(trained.model, FeatureMatrix(data.x[:0], data.names))
    with pytest.raises(TaggerInputError, match="labels"):
        train_dl1(FeatureMatrix(data.x, data.names), None, CFG, tmp_path, progress=False)
    w = np.ones(len(data), np.float32)
    w[3] = np.inf
    with pytest.raises(NonFiniteInputError, match=r"DL1 training set: weight holds 1 NaN/inf value\(s\), the first in jet 3$"):
        train_dl1(
            FeatureMatrix(data.x, data.names, data.label, w), None, CFG, tmp_path, progress=False
        )


def test_chain_on_generated_ttbar(ttbar_splits, cfg: TaggersConfig, tmp_path: Path) -> None:
    """End to end on the generated ttbar sample (conftest): RNNIP on the track sequences,
    IP2D/IP3D and SV1 from the other tagger modules, then MV2 and DL1 (+ RNNIP outputs) on
    the jet columns; every output is finite and MV2 separates b from light."""
    from taggers.algorithms.ipxd import evaluate, fit_templates
    from taggers.algorithms.mv2 import predict_mv2, train_mv2
    from taggers.algorithms.sv1 import sv1
    from taggers.nn.rnnip import predict_rnnip, rnnip_columns, train_rnnip

    train, val, test = ttbar_splits
    models = TaggerModelsConfig.validated({
        "rnnip": {"max_epochs": 2, "batch_size": 128},
        "mv2": {"n_estimators": 40, "max_depth": 3},
        "dl1": {"max_epochs": 2, "layers": [16, 8]},
    })
    rnn = train_rnnip(train, val, models.rnnip, tmp_path / "rnnip", progress=False)
    tpl = {k: fit_templates(train, cfg, k) for k in ("ip2d", "ip3d")}

    def decorate(ds):
        cols = {**evaluate(tpl["ip2d"], ds), **evaluate(tpl["ip3d"], ds), **sv1(ds, cfg.sv1)}
        cols["abs_eta"] = np.abs(ds.jets["eta"])
        cols.update(rnnip_columns(predict_rnnip(rnn.model, ds)))
        return ds.with_jet_fields(cols)

    train, val, test = (decorate(ds) for ds in (train, val, test))
    high_level = [
        "pt", "abs_eta", "ip2d_log_pb_pu", "ip2d_log_pb_pc", "ip2d_log_pc_pu",
        "ip3d_log_pb_pu", "ip3d_log_pb_pc", "ip3d_log_pc_pu",
        "sv1_mass", "sv1_efrac", "sv1_n2t", "sv1_ntrk", "sv1_lxy", "sv1_l3d", "sv1_sig3d", "sv1_dr",
    ]  # fmt: skip
    mv2 = train_mv2(
        train,
        val,
        models.mv2,
        tmp_path / "mv2",
        feature_names=high_level,
        n_threads=1,
    )
    score = predict_mv2(mv2, test)
    label = test.jets["label"]
    sel = np.isin(label, [5, 0])
    assert np.isfinite(score).all() and roc_auc_score(label[sel] == 5, score[sel]) > 0.65
    dl1_features = [*high_level, "rnnip_pb", "rnnip_pc", "rnnip_pu"]
    dl1 = train_dl1(
        train,
        val,
        models.dl1,
        tmp_path / "dl1",
        feature_names=dl1_features,
        progress=False,
    )
    probs = predict_dl1(dl1.model_path, test)
    assert probs.shape == (len(test), 4) and np.isfinite(probs).all()
    assert load_dl1(dl1.model_path).meta["feature_names"] == dl1_features
