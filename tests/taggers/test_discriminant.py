"""The b-tagging discriminant D = ln(pb / (fc pc + (1 - fc) pu)) and the tagger_models schema."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.core.config import ConfigError, config_from_dict
from analysis.core.config.taggers import TaggerModelsConfig, TaggersConfig
from taggers.discriminant import (
    CLASS_NAMES,
    EPS,
    discriminant,
    discriminant_from_probs,
    tagger_discriminant,
    tagger_fc,
)


def test_hand_computed_values() -> None:
    # fc = 0.07: denominator 0.07*0.2 + 0.93*0.1 = 0.014 + 0.093 = 0.107; 0.7/0.107 = 6.54206
    assert discriminant(0.7, 0.2, 0.1, 0.07) == pytest.approx(1.8782515005814984, abs=1e-12)
    # fc = 0.08: 0.08*0.3 + 0.92*0.15 = 0.024 + 0.138 = 0.162; ln(0.5/0.162) = 1.127012
    assert discriminant(0.5, 0.3, 0.15, 0.08) == pytest.approx(1.1270117631898076, abs=1e-12)
    # limits: fc = 0 -> ln(pb/pu), fc = 1 -> ln(pb/pc)
    assert discriminant(0.5, 0.3, 0.15, 0.0) == pytest.approx(math.log(0.5 / 0.15), abs=1e-12)
    assert discriminant(0.5, 0.3, 0.15, 1.0) == pytest.approx(math.log(0.5 / 0.3), abs=1e-12)
    # equal probabilities give 0 for any fc
    assert discriminant(0.25, 0.25, 0.25, 0.3) == pytest.approx(0.0, abs=1e-12)


def test_from_probs_class_order_and_tau_ignored() -> None:
    assert CLASS_NAMES == ("b", "c", "light", "tau")
    probs = np.array([[0.7, 0.2, 0.1, 0.0], [0.5, 0.3, 0.15, 0.05], [0.1, 0.1, 0.1, 0.7]])
    d = discriminant_from_probs(probs, 0.07)
    assert d.dtype == np.float64 and d.shape == (3,)
    assert d[0] == pytest.approx(1.8782515005814984)
    assert d[2] == pytest.approx(0.0, abs=1e-12)  # tau probability does not enter
    np.testing.assert_allclose(discriminant_from_probs(probs[:, :3], 0.07), d)


def test_clipping_keeps_values_finite() -> None:
    d = discriminant(
        np.array([0.0, 1.0, 0.0]), np.array([0.5, 0.0, 0.0]), np.array([0.5, 0.0, 0.0]), 0.07
    )
    assert np.all(np.isfinite(d))
    assert d[0] == pytest.approx(math.log(EPS / 0.5))
    assert d[1] == pytest.approx(math.log(1.0 / EPS))
    assert d[2] == pytest.approx(0.0)
    assert np.all(np.abs(d) <= math.log(1 / EPS) + 1e-9)
    # float32 probabilities that underflow still give a finite D
    p = np.array([[1.0, 1e-45, 0.0, 0.0]], dtype=np.float32)
    assert np.isfinite(discriminant_from_probs(p, 0.07)).all()


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="f_c"):
        discriminant(0.5, 0.3, 0.2, 1.5)
    with pytest.raises(ValueError, match="p_c"):
        discriminant(0.5, np.nan, 0.2, 0.07)
    with pytest.raises(ValueError, match="p_u.*negative"):
        discriminant(0.5, 0.3, -0.2, 0.07)
    with pytest.raises(ValueError, match="shape"):
        discriminant_from_probs(np.ones((4, 2)), 0.07)
    with pytest.raises(ValueError, match="different shapes"):
        discriminant(np.ones(3), np.ones(2), np.ones(3), 0.07)


def test_fc_from_config() -> None:
    fc = TaggersConfig.default().discriminant_fc
    assert tagger_fc("rnnip", fc) == pytest.approx(0.07)
    assert tagger_fc("dl1", fc) == pytest.approx(0.018)
    assert tagger_fc("ip3d", fc) == pytest.approx(0.07)
    other = TaggersConfig.validated({"discriminant_fc": {"rnnip": 0.1}}).discriminant_fc
    assert tagger_fc("rnnip", other) == pytest.approx(0.1)
    assert tagger_fc("dl1", other) == pytest.approx(0.018)
    probs = np.array([[0.7, 0.2, 0.1, 0.0]])
    expected = math.log(0.7 / (0.1 * 0.2 + 0.9 * 0.1))
    assert tagger_discriminant(probs, "rnnip", other)[0] == pytest.approx(expected)
    with pytest.raises(ValueError, match="mv2"):
        tagger_fc("mv2", fc)


def test_schema_defaults_and_errors() -> None:
    sec = TaggerModelsConfig.default()
    assert sec.rnnip.lstm_units == 25 and sec.rnnip.dropout == 0.2
    assert sec.rnnip.n_grades == 4 and sec.rnnip.learning_rate == 1e-3
    assert sec.mv2.c_fraction == 0.08
    assert sec.dl1.layers == (64, 48, 36, 24, 12, 6)
    paper = TaggerModelsConfig.validated({"dl1": {"layers": [256, 128, 60, 48, 36, 24, 12, 6]}})
    assert paper.dl1.layers[0] == 256
    with pytest.raises(ConfigError, match="lstm_unit"):
        TaggerModelsConfig.validated({"rnnip": {"lstm_unit": 25}})
    with pytest.raises(ConfigError, match="c_fraction"):
        TaggerModelsConfig.validated({"mv2": {"c_fraction": 1.5}})
    full = config_from_dict(
        {
            "seed": 3,
            "generation": {
                "samples": {"tt": {"process": "ttbar", "shards": 1, "events_per_shard": 10}}
            },
        }
    )
    assert "fc" not in full.tagger_models.rnnip.to_dict()  # f_c lives in taggers.discriminant_fc
    assert full.taggers.discriminant_fc.rnnip == 0.07
