"""The CNN: the paper's architecture, image-size checks, model files and their normalisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from analysis.core.config import CaloConfig
from analysis.core.errors import ModelMismatchError
from selections.rpv.cnn.images import ImageNormalisation, ImageSet, ImageSizeError, ImageSpec, SparseImages
from selections.rpv.cnn.model import CaloCNN, build_model, load_model, save_model
from selections.rpv.cnn.train import predict

DEFAULT_MODEL = CaloConfig.default().model
TINY = DEFAULT_MODEL.replace(filters=2, dense=4)


def test_default_network_is_the_papers() -> None:
    model = build_model(ImageSpec(), DEFAULT_MODEL)
    convs = list(model.convs)
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (3, 128, (3, 3)), (128, 128, (3, 3)), (128, 128, (3, 3))]
    assert model.fc.in_features == 128 * 8 * 8 and model.fc.out_features == 512
    assert model.out.out_features == 2 and model.drop.p == 0.5
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 2)


@pytest.mark.parametrize("size,circular", [(224, False), (32, True)])
def test_other_sizes_and_circular_phi(size: int, circular: bool) -> None:
    spec = ImageSpec(size, size, -3.2, 3.2)
    model = build_model(spec, TINY.replace(circular_phi=circular)).eval()
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        assert model(x).shape == (1, 2)
        if circular:
            # periodic phi padding: the first conv layer commutes with a phi roll
            a = model.convs[0](torch.nn.functional.pad(x, (1, 1, 0, 0), mode="circular"))
            b = model.convs[0](torch.nn.functional.pad(torch.roll(x, 5, 3), (1, 1, 0, 0), mode="circular"))
            torch.testing.assert_close(torch.roll(a, 5, 3), b)


def _tiny(spec: ImageSpec) -> tuple[CaloCNN, ImageNormalisation, SparseImages]:
    rng = np.random.default_rng(0)
    dense = (rng.random((6, *spec.shape)) < 0.05) * rng.exponential(3.0, (6, *spec.shape))
    sp = SparseImages.from_dense(dense.astype(np.float32), spec)
    return build_model(spec, TINY), ImageNormalisation.fit(sp, "log1p"), sp


def test_image_size_that_does_not_match_the_model_is_an_error() -> None:
    model, norm, _ = _tiny(ImageSpec(32, 32))
    with pytest.raises(ImageSizeError, match=r"input images have shape \(3, 64, 64\) but the model expects "
                                             r"\(channels, eta, phi\) = \(3, 32, 32\)"):
        model(torch.zeros(1, 3, 64, 64))
    # an image set with another grid (same pixel count, other eta range) is refused before the net
    other = ImageSpec(32, 32, -2.5, 2.5)
    _, _, sp = _tiny(other)
    n = len(sp)
    iset = ImageSet(sp, np.arange(n, dtype=np.uint64), np.zeros(n, np.int8), np.ones(n), np.ones(n, np.float32),
                    np.zeros(n, np.int16), ["s"])
    with pytest.raises(ImageSizeError, match=r"image grid mismatch: the image file has 32 x 32 \(eta in \[-2.5, 2.5\)"):
        predict(model, iset, norm.normaliser, "cpu")
    with pytest.raises(ImageSizeError, match="too small for 3 max-pool layers"):
        build_model(ImageSpec(4, 4), TINY)


def test_model_file_round_trip_and_normalisation_mismatch(tmp_path) -> None:
    spec = ImageSpec(16, 16)
    model, norm, sp = _tiny(spec)
    save_model(tmp_path / "m.pt", model, norm, TINY, info={"n_train": 6})
    (tmp_path / "norm.json").write_text(json.dumps(norm.to_dict()))
    loaded = load_model(tmp_path / "m.pt", normalisation=tmp_path / "norm.json")
    assert loaded.info == {"n_train": 6} and loaded.model_cfg == TINY and loaded.path == str(tmp_path / "m.pt")
    assert loaded.normalisation.to_dict() == norm.to_dict() and loaded.normaliser.transform == "log1p"
    np.testing.assert_array_equal(loaded.normaliser.std, norm.normaliser.std)
    x = torch.rand(2, 3, 16, 16)
    model.eval()
    torch.testing.assert_close(loaded.model(x), model(x))

    # a normalisation fitted on other images
    other = ImageNormalisation.fit(sp.take(np.array([0, 1])), "log1p")
    (tmp_path / "other.json").write_text(json.dumps(other.to_dict()))
    with pytest.raises(ModelMismatchError, match="normalisation file does not match model .*channel scales"):
        load_model(tmp_path / "m.pt", normalisation=tmp_path / "other.json")
    # one for another image grid / transform
    d = dict(norm.to_dict(), transform="linear", image=ImageSpec(32, 32).to_dict())
    (tmp_path / "grid.json").write_text(json.dumps(d))
    with pytest.raises(ModelMismatchError, match=r"image grid 32 x 32 .* != model's 16 x 16.*transform 'linear'"):
        load_model(tmp_path / "m.pt", normalisation=tmp_path / "grid.json")
    # not a model file at all
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ModelMismatchError, match="not a readable torch model file"):
        load_model(tmp_path / "junk.pt")
    with pytest.raises(ModelMismatchError, match="not a calo normalisation"):
        load_model(tmp_path / "m.pt", normalisation=_write(tmp_path / "bad.json", {"scale": [1]}))


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path
