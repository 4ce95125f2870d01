"""MV2 (XGBoost): the c-fraction reweighting, separation with a shuffled control, score range
and discriminant, save/load with feature names, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from analysis.core.config.taggers import TaggerModelsConfig
from analysis.core.errors import ModelMismatchError, NonFiniteInputError
from tests.fixtures.taggers import HIGHLEVEL_NAMES, synthetic_highlevel
from taggers.algorithms.mv2 import (
    MODEL_FILE,
    load_mv2,
    mv2_discriminant,
    mv2_training_weights,
    predict_mv2,
    train_mv2,
)
from taggers.training import FeatureMatrix, MissingClassError, TaggerInputError

CFG = TaggerModelsConfig.validated(
    {"mv2": {"n_estimators": 60, "max_depth": 3, "early_stopping_rounds": 10, "seed": 3}}
).mv2


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("mv2")
    model = train_mv2(
        synthetic_highlevel(5000, seed=1), synthetic_highlevel(1500, seed=2), CFG, out, n_threads=1
    )
    return model


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    sel = np.isin(label, [5, 0])
    return float(roc_auc_score(label[sel] == 5, score[sel]))


def test_c_fraction_reweighting() -> None:
    # 4 b, 2 c, 6 light, 1 tau; light weights 1, c weight 2 -> W_c = 4, W_l = 6
    label = np.array([5] * 4 + [4] * 2 + [0] * 6 + [15])
    weight = np.array([1.0] * 4 + [2.0] * 2 + [1.0] * 6 + [1.0])
    use, y, w, c_scale = mv2_training_weights(label, weight, 0.08)
    assert use.sum() == 12 and not use[-1]  # tau not used
    # s_c = fc W_l / ((1 - fc) W_c) = 0.08 * 6 / (0.92 * 4)
    assert c_scale == pytest.approx(0.08 * 6 / (0.92 * 4))
    lab = label[use]
    w_c, w_l, w_b = w[lab == 4].sum(), w[lab == 0].sum(), w[lab == 5].sum()
    assert w_c / (w_c + w_l) == pytest.approx(0.08, rel=1e-6)
    assert w_b == pytest.approx(w_c + w_l, rel=1e-6)
    np.testing.assert_array_equal(y, (lab == 5).astype(np.float32))
    # c_fraction 0: c jets dropped, no c needed
    use0, _, _w0, s0 = mv2_training_weights(label[label != 4], None, 0.0)
    assert s0 == 0.0 and use0.sum() == 10
    with pytest.raises(MissingClassError, match="'c'"):
        mv2_training_weights(label[label != 4], None, 0.08)
    with pytest.raises(MissingClassError, match="'light'"):
        mv2_training_weights(label[label != 0], None, 0.08)


def test_separation_and_shuffled_control(trained, tmp_path: Path) -> None:
    test = synthetic_highlevel(4000, seed=3)
    score = predict_mv2(trained, test)
    assert score.dtype == np.float32 and score.min() >= 0 and score.max() <= 1
    assert _auc(score, test.label) > 0.75
    rng = np.random.default_rng(2)

    def shuffled(fm: FeatureMatrix) -> FeatureMatrix:
        return FeatureMatrix(fm.x, fm.names, rng.permutation(fm.label), fm.weight)

    ctrl = train_mv2(
        shuffled(synthetic_highlevel(5000, seed=1)),
        shuffled(synthetic_highlevel(1500, seed=2)),
        CFG,
        tmp_path,
        n_threads=1,
    )
    test_sh = shuffled(test)
    auc_ctrl = _auc(predict_mv2(ctrl, test_sh), test_sh.label)
    assert abs(auc_ctrl - 0.5) < 0.07, auc_ctrl


def test_discriminant_is_logit() -> None:
    s = np.array([0.5, 0.9, 0.1, 0.0, 1.0])
    d = mv2_discriminant(s)
    assert d[0] == pytest.approx(0.0)
    assert d[1] == pytest.approx(np.log(9.0))
    assert d[2] == pytest.approx(-np.log(9.0))
    assert np.isfinite(d).all() and d[3] < -15 and d[4] > 15
    assert np.all(np.diff(mv2_discriminant(np.linspace(0, 1, 101))) > 0)


def test_save_load_and_feature_names(trained) -> None:
    path = trained.path
    assert path.name == MODEL_FILE
    saved = json.loads(path.read_text())
    assert saved["learner"]["feature_names"] == HIGHLEVEL_NAMES
    loaded = load_mv2(path)
    assert loaded.feature_names == HIGHLEVEL_NAMES
    assert loaded.meta["c_fraction"] == 0.08 and loaded.meta["config"]["max_depth"] == 3
    test = synthetic_highlevel(300, seed=4)
    np.testing.assert_array_equal(predict_mv2(loaded, test), predict_mv2(path, test))
    perm = np.random.default_rng(0).permutation(len(HIGHLEVEL_NAMES))
    np.testing.assert_array_equal(
        predict_mv2(loaded, FeatureMatrix(test.x[:, perm], [HIGHLEVEL_NAMES[i] for i in perm])),
        predict_mv2(loaded, test),
    )
    with pytest.raises(
        ModelMismatchError, match=r"mismatched model and feature file \(MV2\).*'pt'"
    ):
        predict_mv2(loaded, FeatureMatrix(test.x[:, 1:], HIGHLEVEL_NAMES[1:]))
    with pytest.raises(ModelMismatchError, match="mismatched model and feature file"):
        load_mv2(path, features=["pt"])


def test_bad_inputs(trained, tmp_path: Path) -> None:
    data = synthetic_highlevel(600, seed=5)
    x = data.x.copy()
    x[4, HIGHLEVEL_NAMES.index("ip3d_pb_pu")] = -np.inf
    with pytest.raises(NonFiniteInputError, match="MV2 test set: ip3d_pb_pu holds 1 NaN/inf value.*jet 4"):
        predict_mv2(trained, FeatureMatrix(x, data.names))
    with pytest.raises(NonFiniteInputError, match="ip3d_pb_pu"):
        train_mv2(FeatureMatrix(x, data.names, data.label), None, CFG, tmp_path, n_threads=1)
    no_b = data.label != 5
    with pytest.raises(MissingClassError, match="'b'"):
        train_mv2(
            FeatureMatrix(data.x[no_b], data.names, data.label[no_b]),
            None,
            CFG,
            tmp_path,
            n_threads=1,
        )
    with pytest.raises(TaggerInputError, match="empty"):
        predict_mv2(trained, FeatureMatrix(data.x[:0], data.names))
