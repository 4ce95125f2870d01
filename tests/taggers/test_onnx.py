"""ONNX export of RNNIP (masked variant) and DL1: ONNX Runtime agrees with torch to 1e-5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from analysis.core.config.taggers import TaggerModelsConfig
from analysis.core.errors import ModelMismatchError, NonFiniteInputError
from tests.fixtures.taggers import HIGHLEVEL_NAMES, synthetic_highlevel, synthetic_tagging_dataset
from taggers.nn.dl1 import DL1, predict_dl1, train_dl1
from taggers.onnx_export import (
    MaskedRNNIP,
    export_dl1_onnx,
    export_rnnip_onnx,
    load_onnx,
    predict_onnx,
)
from taggers.nn.rnnip import (
    RNNIP,
    RNNIPInputs,
    as_rnnip_inputs,
    load_rnnip,
    predict_rnnip,
    train_rnnip,
)
from taggers.training import FeatureMatrix, TaggerInputError

ATOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def rnnip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("onnx_rnnip")
    res = train_rnnip(
        synthetic_tagging_dataset(1500, 15, seed=1),
        synthetic_tagging_dataset(400, 15, seed=2),
        TaggerModelsConfig.validated({"rnnip": {"max_epochs": 2, "batch_size": 128}}).rnnip,
        out,
        progress=False,
    )
    return res.model_path


def test_rnnip_onnx_matches_torch(rnnip_path: Path, tmp_path: Path) -> None:
    onnx_path = export_rnnip_onnx(rnnip_path, tmp_path / "rnnip.onnx")
    proto = onnx.load(str(onnx_path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["kind"] == "rnnip" and meta["n_max"] == "15"
    assert [i.name for i in proto.graph.input] == ["continuous", "grade", "mask"]

    test = synthetic_tagging_dataset(2500, 15, seed=3, zero_track_fraction=0.1)
    assert (test.jets["n_tracks"] == 0).sum() > 100  # zero-track jets are covered
    ref = predict_rnnip(rnnip_path, test)  # packed torch model
    for batch in (1, 7, 1000, 10_000):  # batch sizes other than the export's
        got = predict_onnx(
            onnx_path, test if batch != 1 else test.subset(slice(0, 50)), batch_size=batch
        )
        want = ref if batch != 1 else ref[:50]
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    # the masked torch variant itself equals the packed model
    inp = as_rnnip_inputs(test, 4)
    model = MaskedRNNIP(load_rnnip(rnnip_path))
    with torch.no_grad():
        masked = model(
            *(torch.from_numpy(a) for a in (inp.continuous, inp.grade, inp.mask))
        ).numpy()
    np.testing.assert_allclose(masked, ref, rtol=0, atol=1e-6)


def test_rnnip_onnx_checks_inputs(rnnip_path: Path, tmp_path: Path) -> None:
    onnx_path = export_rnnip_onnx(rnnip_path, tmp_path / "rnnip.onnx")
    session = load_onnx(onnx_path)
    with pytest.raises(ModelMismatchError, match="mismatched model and feature file.*n_max"):
        session.predict(synthetic_tagging_dataset(20, 10, seed=4))
    bad = synthetic_tagging_dataset(30, 15, seed=5)
    row = int(np.argmax(bad.tracks["valid"][:, 0]))
    bad.tracks["pt_frac"][row, 0] = np.nan
    with pytest.raises(NonFiniteInputError, match="pt_frac holds 1 NaN/inf"):
        session.predict(bad)
    empty = bad.subset(np.zeros(len(bad), bool))
    with pytest.raises(TaggerInputError, match="empty"):
        session.predict(empty)


def test_bare_rnnip_export_does_not_move_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = RNNIP(lstm_units=25).eval()
    path = export_rnnip_onnx(model, tmp_path / "bare.onnx")
    rng = np.random.default_rng(1)
    n = 64
    lengths = rng.integers(0, 16, n)
    mask = np.arange(15)[None] < lengths[:, None]
    inp = RNNIPInputs(
        rng.normal(size=(n, 15, 4)).astype(np.float32), rng.integers(0, 4, (n, 15)), mask
    )
    np.testing.assert_allclose(
        load_onnx(path).predict(inp), predict_rnnip(model, inp), rtol=0, atol=ATOL
    )
    assert next(model.parameters()).device.type == "cpu"


def test_dl1_onnx_matches_torch(tmp_path: Path) -> None:
    res = train_dl1(
        synthetic_highlevel(2000, seed=1),
        synthetic_highlevel(500, seed=2),
        TaggerModelsConfig.validated({"dl1": {"max_epochs": 2, "batch_size": 256}}).dl1,
        tmp_path,
        progress=False,
    )
    onnx_path = export_dl1_onnx(res.model_path, tmp_path / "dl1.onnx")
    test = synthetic_highlevel(3000, seed=3)
    np.testing.assert_allclose(
        predict_onnx(onnx_path, test, batch_size=999),
        predict_dl1(res.model_path, test),
        rtol=0,
        atol=ATOL,
    )
    session = load_onnx(onnx_path)
    assert session.meta["feature_names"] == HIGHLEVEL_NAMES and session.kind == "dl1"
    cols = {n: test.x[:, i] for i, n in enumerate(HIGHLEVEL_NAMES)}
    np.testing.assert_allclose(
        session.predict(cols), predict_dl1(res.model, test), rtol=0, atol=ATOL
    )
    # the paper's architecture exports too
    wide = DL1(len(HIGHLEVEL_NAMES), layers=[256, 128, 60, 48, 36, 24, 12, 6]).eval()
    wide_path = export_dl1_onnx(wide, tmp_path / "wide.onnx")
    fm = FeatureMatrix(test.x, HIGHLEVEL_NAMES)
    np.testing.assert_allclose(
        load_onnx(wide_path).predict(fm), predict_dl1(wide, fm), rtol=0, atol=ATOL
    )


# --------------------------------------------------------------------------- MV2 and the metadata


@pytest.fixture(scope="module")
def mv2_model(tmp_path_factory: pytest.TempPathFactory):
    from taggers.algorithms.mv2 import train_mv2

    out = tmp_path_factory.mktemp("onnx_mv2")
    cfg = TaggerModelsConfig.validated({"mv2": {"n_estimators": 80, "max_depth": 5, "early_stopping_rounds": 0}}).mv2
    return train_mv2(synthetic_highlevel(6000, seed=1), None, cfg, out, n_threads=1)


def test_mv2_onnx_equals_xgboost(mv2_model, tmp_path: Path) -> None:
    """The exported tree ensemble gives XGBoost's score to float32 precision, matched by name."""
    from taggers.algorithms.mv2 import mv2_discriminant, predict_mv2
    from taggers.onnx_export import export_mv2_onnx

    path = export_mv2_onnx(mv2_model.path, tmp_path / "mv2.onnx")
    test = synthetic_highlevel(20_000, seed=5)
    ref = predict_mv2(mv2_model, test)
    sess = load_onnx(path, threads=1)
    got = sess.predict(test, batch_size=7_000)  # several batches
    assert got.shape == ref.shape == (20_000,) and got.dtype == np.float32
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(got, ref, rtol=0, atol=4 * eps)
    assert np.mean(np.abs(got - ref)) < eps
    # the working points cut on the logit: the same ordering of the jets
    d_ref, d_got = mv2_discriminant(ref), mv2_discriminant(got)
    assert np.corrcoef(d_ref, d_got)[0, 1] > 0.999999
    # columns matched by name: reordered columns give the same scores
    perm = np.random.default_rng(0).permutation(len(HIGHLEVEL_NAMES))
    shuffled = FeatureMatrix(test.x[:, perm], [test.names[i] for i in perm], test.label)
    assert np.array_equal(sess.predict(shuffled), got)
    with pytest.raises(ModelMismatchError, match="sv1_dr"):
        sess.predict(FeatureMatrix(test.x[:, :-1], test.names[:-1], test.label))
    assert predict_onnx(path, test).shape == (20_000,)
    # reproducible: a second export is the same file (no random graph name)
    again = export_mv2_onnx(mv2_model.path, tmp_path / "again.onnx")
    assert again.read_bytes() == path.read_bytes()


def test_every_export_documents_its_inputs(rnnip_path: Path, mv2_model, tmp_path: Path) -> None:
    """The ONNX graph's input names and shapes, and the metadata that documents them."""
    import json

    from taggers.onnx_export import export_mv2_onnx, io_signature

    dl1 = DL1(len(HIGHLEVEL_NAMES), layers=(8,))
    dl1.meta = {"feature_names": list(HIGHLEVEL_NAMES)}
    paths = {
        "rnnip": export_rnnip_onnx(rnnip_path, tmp_path / "rnnip.onnx"),
        "dl1": export_dl1_onnx(dl1, tmp_path / "dl1.onnx"),
        "mv2": export_mv2_onnx(mv2_model, tmp_path / "mv2.onnx"),
    }
    for kind, path in paths.items():
        proto = onnx.load(str(path))
        meta = {p.key: json.loads(p.value) if p.value[:1] in "[{" else p.value for p in proto.metadata_props}
        assert meta["kind"] == kind
        graph_inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
                        for i in proto.graph.input}
        declared = {i["name"]: i["shape"] for i in meta["inputs"]}
        assert set(graph_inputs) == set(declared), kind
        for name, shape in declared.items():
            assert len(shape) == len(graph_inputs[name]), (kind, name)
            for want, have in zip(shape[1:], graph_inputs[name][1:], strict=True):
                assert want == have, (kind, name)
        assert {o.name for o in proto.graph.output} == {o["name"] for o in meta["outputs"]}
        assert meta == {**meta, **io_signature(kind, n_max=15, n_features=len(HIGHLEVEL_NAMES),
                                               feature_names=list(HIGHLEVEL_NAMES))}
    with pytest.raises(ValueError, match="no ONNX export"):
        io_signature("ip3d")
