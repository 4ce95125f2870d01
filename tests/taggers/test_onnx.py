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
