"""The b-tagging discriminant of the multi-class taggers (RNNIP, DL1).

.. math::

    D = \\ln \\frac{p_b}{f_c\\, p_c + (1 - f_c)\\, p_u}

with the class probabilities in the order of :data:`CLASS_NAMES` (b, c, light, tau); the tau
probability does not enter. ``f_c`` is configured per tagger in ``taggers.discriminant_fc``
(:func:`tagger_fc`).

Numerical safety: the computation is done in float64, and both the numerator ``p_b`` and the
denominator are clipped from below at :data:`EPS` = 1e-10 before the logarithm, so a
probability that underflowed to 0 gives a finite D, bounded by ``|D| <= ln(1/EPS) ~= 23.03``.
The clip only changes jets with p_b or the background probability below 1e-10, i.e. far
beyond any working point derived on a realistic sample (rejections of 1e10).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis.core.config.taggers import TaggersDiscriminantFc

__all__ = [
    "CLASS_NAMES",
    "EPS",
    "discriminant",
    "discriminant_from_probs",
    "tagger_discriminant",
    "tagger_fc",
]

#: Class order of the 4-class taggers' outputs.
CLASS_NAMES: tuple[str, ...] = ("b", "c", "light", "tau")

#: Lower clip of the numerator and the denominator of D (see the module docstring).
EPS = 1e-10


def discriminant(pb: Any, pc: Any, pu: Any, fc: float, *, eps: float = EPS) -> np.ndarray:
    """D = ln(pb / (fc pc + (1 - fc) pu)) element-wise, in float64 (see the module docstring).

    Raises ``ValueError`` if ``fc`` is outside [0, 1], if the arrays' shapes differ, or if a
    probability is NaN/inf or negative (naming which one).
    """
    if not 0.0 <= float(fc) <= 1.0:
        raise ValueError(f"f_c must lie in [0, 1], got {fc}")
    arrays = {}
    for name, values in (("p_b", pb), ("p_c", pc), ("p_u", pu)):
        a = np.asarray(values, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError(
                f"discriminant input {name} holds {np.count_nonzero(~np.isfinite(a))} NaN/inf values"
            )
        if np.any(a < 0):
            raise ValueError(f"discriminant input {name} holds negative probabilities")
        arrays[name] = a
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1:
        raise ValueError(
            f"p_b, p_c, p_u have different shapes: {[a.shape for a in arrays.values()]}"
        )
    num = np.maximum(arrays["p_b"], eps)
    den = np.maximum(fc * arrays["p_c"] + (1.0 - fc) * arrays["p_u"], eps)
    return np.log(num) - np.log(den)


def discriminant_from_probs(probs: Any, fc: float, *, eps: float = EPS) -> np.ndarray:
    """D from an (n, 3) or (n, 4) probability array in the class order b, c, light[, tau]."""
    p = np.asarray(probs)
    if p.ndim != 2 or p.shape[1] not in (3, 4):
        raise ValueError(
            f"expected probabilities of shape (n, 3) or (n, 4) in the order {CLASS_NAMES}, got {p.shape}"
        )
    return discriminant(p[:, 0], p[:, 1], p[:, 2], fc, eps=eps)


def tagger_fc(tagger: str, fc: TaggersDiscriminantFc) -> float:
    """f_c of ``tagger`` from ``taggers.discriminant_fc`` — the one home of every tagger's f_c.

    Args:
        tagger: ``ip2d``, ``ip3d``, ``rnnip`` or ``dl1`` (MV2 has none).
        fc: the ``taggers.discriminant_fc`` section.

    Raises:
        ValueError: no f_c for ``tagger``.
    """
    known = fc.to_dict()
    if tagger not in known:
        raise ValueError(f"no f_c configured for tagger {tagger!r} in taggers.discriminant_fc; known: {sorted(known)}")
    return float(known[tagger])


def tagger_discriminant(probs: Any, tagger: str, fc: TaggersDiscriminantFc) -> np.ndarray:
    """D of ``tagger`` (float64) from its (n, 4) probabilities, f_c from ``taggers.discriminant_fc``."""
    return discriminant_from_probs(probs, tagger_fc(tagger, fc))
