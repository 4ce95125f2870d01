"""The RPV multijet samples: labels, σ normalisation and the split by event number.

Shared by the cut-based search (:mod:`selections.rpv.cuts`) and the whole-detector CNN
(:mod:`selections.rpv.cnn`), which must label, weight and split the same events alike:

* label: 1 for the ``rpv.signal_samples``, 0 for the ``rpv.background_samples``
  (:func:`sample_label`);
* weight per event: ``w = genWeight · σ / Σw`` in pb (σ = ``xsec_pb`` and Σw = the sum of
  ``genEventSumw`` over the sample's files, :func:`sample_normalisation`); Σ w over the whole
  sample is σ, and ``w · L`` (L in pb⁻¹) gives expected events;
* split: an event belongs to ``train``, ``validation`` or ``test`` by ``event % modulus``
  (``calo.split``, :func:`split_mask`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.core.config.rpv import CaloSplit, RpvConfig
from analysis.core.errors import InputError

__all__ = [
    "SPLITS",
    "SampleInputError",
    "SampleNormalisation",
    "ZeroWeightError",
    "sample_label",
    "sample_normalisation",
    "split_mask",
]

#: the splits by event number (``calo.split``)
SPLITS = ("train", "validation", "test")


class SampleInputError(InputError):
    """A sample's files or configuration cannot label, weight or split its events."""


class ZeroWeightError(SampleInputError):
    """A sample's sum of generator weights (or a class's total weight) is zero or negative."""


@dataclass(frozen=True)
class SampleNormalisation:
    """σ and Σw of one sample's files: what turns ``genWeight`` into a weight in pb.

    Attributes:
        xsec_pb: the cross-section σ (pb), the generated-event-weighted mean of the files' σ.
        sumw: Σ ``genEventSumw`` over the files.
        n_events: entries in the files.
        files: the files, as given.
    """

    xsec_pb: float
    sumw: float
    n_events: int
    files: tuple[str, ...]

    def event_weights(self, gen_weight: np.ndarray) -> np.ndarray:
        """``genWeight · σ / Σw`` (pb per event, float64) of events of this sample."""
        return np.asarray(gen_weight, np.float64) * self.xsec_pb / self.sumw

    def to_dict(self) -> dict[str, Any]:
        """``{"xsec_pb", "sumw", "n_events", "files"}`` (as stored in image and table files)."""
        return {"xsec_pb": self.xsec_pb, "sumw": self.sumw, "n_events": self.n_events,
                "files": list(self.files)}


def sample_normalisation(files: Sequence[str | os.PathLike[str]], sample: str) -> SampleNormalisation:
    """σ (pb), Σw and event count of a sample's files, from their metadata and ``Runs`` trees.

    Args:
        files: the sample's ntuples (hepline format).
        sample: the sample's name; every file must belong to it.

    Returns:
        The :class:`SampleNormalisation`.

    Raises:
        SampleInputError: no file, a file of another sample or without ``xsec_pb``.
        ZeroWeightError: Σw ≤ 0 or σ ≤ 0.
    """
    from analysis.io.ingest import read_metadata

    if not files:
        raise SampleInputError(f"sample {sample!r}: no input files")
    xsecs, n_gen = [], []
    sumw = 0.0
    n_events = 0
    for f in files:
        meta = read_metadata(f)
        if meta.get("sample") not in (None, sample):
            raise SampleInputError(f"{f}: file belongs to sample {meta.get('sample')!r}, not {sample!r}")
        if "xsec_pb" not in meta:
            raise SampleInputError(f"{f}: no xsec_pb in the file metadata; cannot weight sample {sample!r}")
        xsecs.append(float(meta["xsec_pb"]))
        n_gen.append(float(meta.get("n_generated", meta.get("n_events", 1)) or 1))
        runs = meta.get("runs") or {}
        sumw += float(runs.get("genEventSumw", meta.get("sumw", 0.0)))
        n_events += int(meta.get("n_entries", meta.get("n_events", 0)))
    if not sumw > 0:
        raise ZeroWeightError(
            f"sample {sample!r} has a sum of generator weights of {sumw:g} in "
            f"{len(files)} file(s) ({', '.join(str(f) for f in files[:3])}); cannot normalise "
            "its events to the cross-section"
        )
    # shards carry their own sigmaGen estimate: generated-event-weighted mean, as
    # analysis.generation.produce.merge_metadata does
    w = np.asarray(n_gen) / np.sum(n_gen)
    xsec = float(np.sum(w * np.asarray(xsecs)))
    if not xsec > 0:
        raise ZeroWeightError(f"sample {sample!r} has a cross-section of {xsec:g} pb")
    return SampleNormalisation(xsec, sumw, n_events, tuple(str(f) for f in files))


def sample_label(rpv: RpvConfig, sample: str, given: int | None = None) -> int:
    """The label of ``sample``: ``given`` if not None, else 1 for an ``rpv.signal_samples``
    entry and 0 for an ``rpv.background_samples`` one.

    Raises:
        SampleInputError: the sample is in neither list (and no label is given).
    """
    if given is not None:
        return int(given)
    if sample in rpv.signal_samples:
        return 1
    if sample in rpv.background_samples:
        return 0
    raise SampleInputError(
        f"sample {sample!r} is in neither rpv.signal_samples nor rpv.background_samples; pass --label")


def split_mask(event: np.ndarray, split: CaloSplit, name: str) -> np.ndarray:
    """The events of split ``name`` (train, validation, test): ``event % modulus`` in its residues.

    Args:
        event: event numbers.
        split: the ``calo.split`` section.
        name: one of :data:`SPLITS`.

    Raises:
        ValueError: an unknown split name.
        SampleInputError: a residue in two splits, or not below the modulus.
    """
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; known: {SPLITS}")
    seen: dict[int, str] = {}
    for s in SPLITS:
        for r in getattr(split, s):
            if r in seen:
                raise SampleInputError(f"calo.split: residue {r} is in both {seen[r]!r} and {s!r}")
            if r >= split.modulus:
                raise SampleInputError(f"calo.split: residue {r} of {s!r} is not below modulus {split.modulus}")
            seen[r] = s
    res = np.asarray(event, dtype=np.uint64) % np.uint64(split.modulus)
    return np.isin(res.astype(np.int64), np.asarray(getattr(split, name), dtype=np.int64))
