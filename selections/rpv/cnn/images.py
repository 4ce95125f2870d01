"""Sparse η×φ event images for the whole-detector CNN (Bhimji et al., arXiv:1711.03573).

An event image has three channels on an ``n_eta × n_phi`` grid (:data:`CHANNELS`):

0. ``ecal``: the sum of ``Tower_eEM`` (GeV) of the towers whose centre falls in the pixel;
1. ``hcal``: the same for ``Tower_eHad``;
2. ``ntrack``: the number of reconstructed tracks whose perigee (η, φ) falls in the pixel.

φ always spans [-π, π) with ``n_phi`` pixels; a φ at or beyond ±π wraps around (φ = π is
pixel 0, like φ = -π). η spans ``[eta_min, eta_max)``; towers and tracks outside are not in
the image. The default, 64 pixels over [-3.2, 3.2), has the pitch of the tower grid
(0.1 × 2π/64): every pixel holds exactly one tower.

Images are ~1–5 % occupied, so they are stored sparse, one compressed-sparse-row set per
collection of events (:class:`SparseImages`): ``offsets`` (n+1), and per non-zero pixel its
flat ``index = (channel · n_eta + ieta) · n_phi + iphi`` (uint16 when it fits, else uint32)
and ``value`` (float32), sorted by event then index. The dense tensor is only ever built per
batch, on the training device (:mod:`selections.rpv.cnn.loader`).

An :class:`ImageSet` adds per event: the event number, the label (1 signal, 0 background),
the sample, ``gen_weight`` and ``weight`` = genWeight · σ / Σw (pb per event, see
:mod:`selections.rpv.samples`; Σ weight = σ over the whole sample, times L gives the expected
events). One HDF5 file per sample (:func:`write_images`, :func:`read_images`;
:func:`make_images` is the ``hepline calo images`` command).

The per-channel normalisation (:func:`fit_channel_normaliser`) is an
:class:`analysis.ml.normaliser.Normaliser` with zero mean, so that empty pixels stay zero;
:class:`ImageNormalisation` keeps it with the image grid it was fitted for (the
``normalisation.json`` file and the model file hold that form).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from analysis.core.atomic import atomic_path, write_json
from analysis.core.checks import check_finite
from analysis.core.config import Config
from analysis.core.config.rpv import CaloImage, CaloSplit
from analysis.core.errors import InputError, ModelMismatchError
from analysis.core.provenance import provenance_record, write_hdf5_provenance
from analysis.io.ingest import unique_inputs
from analysis.ml.normaliser import TRANSFORMS, Normaliser
from selections.rpv.samples import sample_label, sample_normalisation, split_mask

log = logging.getLogger(__name__)

__all__ = [
    "BRANCHES",
    "CHANNELS",
    "FORMAT",
    "NORM_FORMAT",
    "WEIGHT_DEFINITION",
    "CaloInputError",
    "EmptyEventError",
    "ImageFileStats",
    "ImageNormalisation",
    "ImageSet",
    "ImageSizeError",
    "ImageSpec",
    "ImagesResult",
    "Transform",
    "SparseImages",
    "build_images",
    "build_sparse",
    "fit_channel_normaliser",
    "images_from_arrays",
    "load_image_files",
    "make_images",
    "match_grid",
    "pixel_indices",
    "read_image_spec",
    "read_images",
    "write_images",
]

CHANNELS: tuple[str, ...] = ("ecal", "hcal", "ntrack")
FORMAT = "hepline-calo-images-1"
NORM_FORMAT = "hepline-calo-norm-1"
WEIGHT_DEFINITION = "genWeight * xsec_pb / sumw (pb per event; times lumi in pb^-1 gives events)"
#: the per-channel transforms of the normalisation (:func:`fit_channel_normaliser`)
Transform = Literal["linear", "log1p"]
BRANCHES = ["event", "genWeight", "Tower_eta", "Tower_phi", "Tower_eEM", "Tower_eHad",
            "Track_eta", "Track_phi"]


class CaloInputError(InputError):
    """Bad input to the calorimeter-image chain (images, normalisation, model, samples)."""


class EmptyEventError(CaloInputError):
    """An event has no calorimeter tower (inside the image)."""


class ImageSizeError(CaloInputError):
    """Images whose grid (size or η range) differs from what a model or normaliser expects."""


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class ImageSpec:
    """The image grid: ``n_eta × n_phi`` pixels, η in ``[eta_min, eta_max)``, φ in [-π, π)."""

    n_eta: int = 64
    n_phi: int = 64
    eta_min: float = -3.2
    eta_max: float = 3.2
    channels: tuple[str, ...] = CHANNELS

    def __post_init__(self) -> None:
        if self.n_eta < 1 or self.n_phi < 1:
            raise ImageSizeError(f"image size must be positive, got {self.n_eta} x {self.n_phi}")
        if not self.eta_max > self.eta_min:
            raise ImageSizeError(f"eta_max ({self.eta_max}) must exceed eta_min ({self.eta_min})")
        object.__setattr__(self, "channels", tuple(self.channels))

    @classmethod
    def from_config(cls, image: CaloImage) -> ImageSpec:
        """The grid of the ``calo.image`` section (the default channels)."""
        return cls(int(image.n_eta), int(image.n_phi), float(image.eta_min), float(image.eta_max))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ImageSpec:
        """The grid of :meth:`to_dict` (as stored in image, normalisation and model files)."""
        return cls(int(d["n_eta"]), int(d["n_phi"]), float(d["eta_min"]), float(d["eta_max"]),
                   tuple(d.get("channels", CHANNELS)))

    def to_dict(self) -> dict[str, Any]:
        """``{"n_eta", "n_phi", "eta_min", "eta_max", "channels"}``."""
        return {"n_eta": self.n_eta, "n_phi": self.n_phi, "eta_min": self.eta_min,
                "eta_max": self.eta_max, "channels": list(self.channels)}

    @property
    def n_channels(self) -> int:
        """Channels per image."""
        return len(self.channels)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Dense shape of one image, ``(channels, n_eta, n_phi)``."""
        return (self.n_channels, self.n_eta, self.n_phi)

    @property
    def size(self) -> int:
        """Pixels per image, all channels."""
        return self.n_channels * self.n_eta * self.n_phi

    @property
    def index_dtype(self) -> np.dtype:
        """The dtype of a flat pixel index: uint16 when it fits, else uint32."""
        return np.dtype(np.uint16) if self.size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)

    @property
    def eta_symmetric(self) -> bool:
        """Whether the η range is symmetric about 0 (η flips keep the grid)."""
        return math.isclose(self.eta_min, -self.eta_max, abs_tol=1e-9)

    def rebinned(self, factor: int) -> ImageSpec:
        """The grid with ``factor × factor`` pixels merged (same η range and channels).

        Raises:
            ImageSizeError: a factor below 1 or one that does not divide both axes.
        """
        f = int(factor)
        if f < 1 or self.n_eta % f or self.n_phi % f:
            raise ImageSizeError(f"cannot merge {factor} x {factor} pixels of a {self.n_eta} x {self.n_phi} image")
        return ImageSpec(self.n_eta // f, self.n_phi // f, self.eta_min, self.eta_max, self.channels)

    def describe(self) -> str:
        """The grid in words, for messages."""
        return (f"{self.n_eta} x {self.n_phi} (eta in [{self.eta_min:g}, {self.eta_max:g}), "
                f"channels {', '.join(self.channels)})")

    def check_same(self, other: ImageSpec, what: str, against: str) -> None:
        """Raise :class:`ImageSizeError` if ``other`` (``what``) differs from this (``against``)."""
        if self != other:
            raise ImageSizeError(
                f"image grid mismatch: {what} has {other.describe()} but {against} expects "
                f"{self.describe()}; rebuild the images with the model's calo.image settings"
            )


def pixel_indices(eta: np.ndarray, phi: np.ndarray, spec: ImageSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ieta, iphi, inside)`` of points; φ wraps around, η outside the range is not inside."""
    eta = np.asarray(eta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    feta = (eta - spec.eta_min) / (spec.eta_max - spec.eta_min) * spec.n_eta
    inside = (feta >= 0) & (feta < spec.n_eta) & np.isfinite(feta)
    ieta = np.where(inside, np.floor(np.where(inside, feta, 0)), 0).astype(np.int64)
    iphi = np.floor((phi + np.pi) / (2 * np.pi) * spec.n_phi).astype(np.int64) % spec.n_phi
    return ieta, iphi, inside


# --------------------------------------------------------------------------- sparse images


@dataclass
class SparseImages:
    """Compressed-sparse-row images: event ``i`` owns ``index/value[offsets[i]:offsets[i+1]]``."""

    spec: ImageSpec
    offsets: np.ndarray
    index: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def nnz(self) -> np.ndarray:
        """Non-zero pixels per event."""
        return np.diff(self.offsets)

    @property
    def nbytes(self) -> int:
        """Bytes of the three arrays."""
        return int(self.offsets.nbytes + self.index.nbytes + self.value.nbytes)

    def take(self, rows: np.ndarray) -> SparseImages:
        """The images of the events ``rows`` (indices or a boolean mask), in that order."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        start, stop = self.offsets[rows], self.offsets[rows + 1]
        counts = stop - start
        pos = _ranges(start, counts)
        offsets = np.zeros(rows.size + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return SparseImages(self.spec, offsets, self.index[pos], self.value[pos])

    def to_dense(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Dense float32 images ``(n, C, n_eta, n_phi)`` (for tests and plots, not training)."""
        sub = self if rows is None else self.take(np.asarray(rows))
        n = len(sub)
        out = np.zeros((n, sub.spec.size), dtype=np.float32)
        row = np.repeat(np.arange(n), sub.nnz)
        out[row, sub.index.astype(np.int64)] = sub.value
        return out.reshape((n, *sub.spec.shape))

    @classmethod
    def from_dense(cls, dense: np.ndarray, spec: ImageSpec) -> SparseImages:
        """Sparse images of a dense ``(n, C, n_eta, n_phi)`` array (exact zeros dropped)."""
        dense = np.asarray(dense, dtype=np.float32)
        if dense.shape[1:] != spec.shape:
            raise ImageSizeError(f"dense images have shape {dense.shape[1:]}, expected {spec.shape}")
        flat = dense.reshape(dense.shape[0], -1)
        row, col = np.nonzero(flat)
        offsets = np.zeros(dense.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=dense.shape[0]), out=offsets[1:])
        return cls(spec, offsets, col.astype(spec.index_dtype), flat[row, col])

    @classmethod
    def concat(cls, parts: Sequence[SparseImages]) -> SparseImages:
        """The images of ``parts`` one after the other (same grid)."""
        if not parts:
            raise CaloInputError("nothing to concatenate")
        spec = parts[0].spec
        for p in parts[1:]:
            spec.check_same(p.spec, "an image set", "the first image set")
        offsets = [np.zeros(1, dtype=np.int64)]
        base = 0
        for p in parts:
            offsets.append(p.offsets[1:] + base)
            base += int(p.offsets[-1])
        return cls(spec, np.concatenate(offsets),
                   np.concatenate([p.index for p in parts]).astype(spec.index_dtype, copy=False),
                   np.concatenate([p.value for p in parts]).astype(np.float32, copy=False))

    def channel_of_entries(self) -> np.ndarray:
        """The channel of every stored pixel (int64)."""
        return (self.index.astype(np.int64) // (self.spec.n_eta * self.spec.n_phi)).astype(np.int64)

    def rebin(self, factor: int) -> SparseImages:
        """The images with ``factor × factor`` pixels summed (e.g. 64 × 64 → 32 × 32 at 2).

        Energies (GeV) and track counts add, so the totals per channel are unchanged.

        Raises:
            ImageSizeError: a factor that does not divide the grid.
        """
        spec = self.spec.rebinned(factor)
        if spec == self.spec:
            return self
        f = int(factor)
        idx = self.index.astype(np.int64)
        npix = self.spec.n_eta * self.spec.n_phi
        ch, rem = np.divmod(idx, npix)
        ieta, iphi = np.divmod(rem, self.spec.n_phi)
        new = (ch * spec.n_eta + ieta // f) * spec.n_phi + iphi // f
        n = len(self)
        row = np.repeat(np.arange(n, dtype=np.int64), self.nnz)
        uniq, inverse = np.unique(row * spec.size + new, return_inverse=True)
        summed = np.bincount(inverse.ravel(), weights=self.value.astype(np.float64), minlength=uniq.size)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(uniq // spec.size, minlength=n), out=offsets[1:])
        return SparseImages(spec, offsets, (uniq % spec.size).astype(spec.index_dtype), summed.astype(np.float32))


def _ranges(start: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for each (s, c), vectorised."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.cumsum(counts) - counts
    return np.repeat(np.asarray(start, dtype=np.int64) - first, counts) + np.arange(total, dtype=np.int64)


def build_sparse(
    n_events: int,
    spec: ImageSpec,
    tower_event: np.ndarray,
    tower_eta: np.ndarray,
    tower_phi: np.ndarray,
    tower_eem: np.ndarray,
    tower_ehad: np.ndarray,
    track_event: np.ndarray,
    track_eta: np.ndarray,
    track_phi: np.ndarray,
) -> SparseImages:
    """Sparse images of ``n_events`` events from flat towers and tracks.

    ``*_event`` give the event (0 … n_events-1) of each tower and track. Entries falling in the
    same pixel are summed (energies) or counted (tracks); exact zeros are dropped.
    """
    npix = spec.n_eta * spec.n_phi
    keys, vals = [], []
    t_ev = np.asarray(tower_event, dtype=np.int64)
    ieta, iphi, inside = pixel_indices(tower_eta, tower_phi, spec)
    base = ieta * spec.n_phi + iphi
    for ch, energy in ((0, tower_eem), (1, tower_ehad)):
        e = np.asarray(energy, dtype=np.float64)
        keep = inside & (e != 0)
        keys.append(t_ev[keep] * spec.size + ch * npix + base[keep])
        vals.append(e[keep])
    k_ev = np.asarray(track_event, dtype=np.int64)
    ieta, iphi, inside = pixel_indices(track_eta, track_phi, spec)
    keys.append(k_ev[inside] * spec.size + 2 * npix + (ieta * spec.n_phi + iphi)[inside])
    vals.append(np.ones(int(inside.sum()), dtype=np.float64))
    key = np.concatenate(keys)
    val = np.concatenate(vals)
    uniq, inverse = np.unique(key, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=val, minlength=uniq.size)
    event = uniq // spec.size
    offsets = np.zeros(n_events + 1, dtype=np.int64)
    np.cumsum(np.bincount(event, minlength=n_events), out=offsets[1:])
    return SparseImages(spec, offsets, (uniq % spec.size).astype(spec.index_dtype),
                        summed.astype(np.float32))


# --------------------------------------------------------------------------- image sets


@dataclass
class ImageSet:
    """Sparse images with their per-event information (see the module docstring).

    Attributes:
        images: the sparse images.
        event: event numbers (uint64).
        label: 1 signal, 0 background (int8).
        weight: genWeight · σ / Σw (pb per event, float64).
        gen_weight: the generator weight (float32).
        sample_id: index into ``samples`` (int16).
        samples: the sample names.
        sample_info: per sample, σ, Σw, files, label and events imaged (as stored in the file).
    """

    images: SparseImages
    event: np.ndarray
    label: np.ndarray
    weight: np.ndarray
    gen_weight: np.ndarray
    sample_id: np.ndarray
    samples: list[str]
    sample_info: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def spec(self) -> ImageSpec:
        """The image grid."""
        return self.images.spec

    def __len__(self) -> int:
        return len(self.images)

    def take(self, rows: np.ndarray) -> ImageSet:
        """The events ``rows`` (indices or a boolean mask), in that order."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return ImageSet(self.images.take(rows), self.event[rows], self.label[rows], self.weight[rows],
                        self.gen_weight[rows], self.sample_id[rows], list(self.samples),
                        dict(self.sample_info))

    @property
    def sample(self) -> np.ndarray:
        """Sample name of each event."""
        return np.asarray(self.samples, dtype=object)[self.sample_id]

    @classmethod
    def concat(cls, parts: Sequence[ImageSet]) -> ImageSet:
        """The events of ``parts`` one after the other; samples are merged by name.

        Raises:
            CaloInputError: nothing to join, or a sample with two different metadata.
        """
        if not parts:
            raise CaloInputError("no image sets given")
        names: list[str] = []
        info: dict[str, dict[str, Any]] = {}
        ids = []
        for p in parts:
            remap = np.zeros(max(len(p.samples), 1), dtype=np.int16)
            for i, s in enumerate(p.samples):
                if s not in names:
                    names.append(s)
                    info[s] = p.sample_info.get(s, {})
                elif p.sample_info.get(s) and info.get(s) and p.sample_info[s] != info[s]:
                    raise CaloInputError(f"sample {s!r} appears in two image files with different metadata")
                remap[i] = names.index(s)
            ids.append(remap[p.sample_id])
        return cls(
            SparseImages.concat([p.images for p in parts]),
            np.concatenate([p.event for p in parts]),
            np.concatenate([p.label for p in parts]),
            np.concatenate([p.weight for p in parts]),
            np.concatenate([p.gen_weight for p in parts]),
            np.concatenate(ids).astype(np.int16),
            names,
            info,
        )

    def split(self, split: CaloSplit, name: str) -> ImageSet:
        """The events of split ``name`` of the ``calo.split`` section (by event number)."""
        return self.take(split_mask(self.event, split, name))

    def rebin(self, factor: int) -> ImageSet:
        """The same events with ``factor × factor`` pixels summed (:meth:`SparseImages.rebin`)."""
        if int(factor) == 1:
            return self
        return replace(self, images=self.images.rebin(factor))


def match_grid(images: ImageSet, spec: ImageSpec, what: str, against: str) -> ImageSet:
    """``images`` on the grid ``spec``: as they are, or with pixels merged when ``spec`` is the
    image grid coarsened by an integer factor (same η range and channels).

    Raises:
        ImageSizeError: any other grid (the message names ``what`` and ``against``).
    """
    have = images.spec
    if have == spec:
        return images
    if spec.n_eta and have.n_eta % spec.n_eta == 0:
        factor = have.n_eta // spec.n_eta
        if factor > 1 and have.n_phi == spec.n_phi * factor and have.rebinned(factor) == spec:
            return images.rebin(factor)
    spec.check_same(have, what, against)
    return images


# --------------------------------------------------------------------------- building from ROOT


def _flat(arr: Any) -> tuple[np.ndarray, np.ndarray]:
    import awkward as ak

    counts = ak.to_numpy(ak.num(arr, axis=1)).astype(np.int64)
    return ak.to_numpy(ak.flatten(arr, axis=1)), counts


def images_from_arrays(arrays: Any, spec: ImageSpec, *, empty_events: str = "raise",
                       source: str = "<arrays>") -> tuple[SparseImages, np.ndarray]:
    """Sparse images of an awkward record array with :data:`BRANCHES`; also the kept-event mask.

    An event without any tower in the image raises :class:`EmptyEventError` naming it
    (``empty_events="raise"``) or is dropped (``"skip"``). NaN or inf in a tower or track
    field, or in the weight, raises :class:`~analysis.core.errors.NonFiniteInputError` naming
    ``source``, the branch and the event (never a non-finite pixel).
    """
    n = len(arrays)
    t_eta, t_count = _flat(arrays["Tower_eta"])
    t_phi, _ = _flat(arrays["Tower_phi"])
    t_eem, _ = _flat(arrays["Tower_eEM"])
    t_ehad, _ = _flat(arrays["Tower_eHad"])
    k_eta, k_count = _flat(arrays["Track_eta"])
    k_phi, _ = _flat(arrays["Track_phi"])
    t_ev = np.repeat(np.arange(n), t_count)
    k_ev = np.repeat(np.arange(n), k_count)
    number = np.asarray(arrays["event"]) if "event" in arrays.fields else np.arange(n)
    for name, values, ev in (("Tower_eta", t_eta, t_ev), ("Tower_phi", t_phi, t_ev), ("Tower_eEM", t_eem, t_ev),
                             ("Tower_eHad", t_ehad, t_ev), ("Track_eta", k_eta, k_ev), ("Track_phi", k_phi, k_ev)):
        check_finite(values, name, source=source, entry=number[ev], entry_name="event")
    if "genWeight" in arrays.fields:
        check_finite(np.asarray(arrays["genWeight"]), "genWeight", source=source, entry=number, entry_name="event")
    imgs = build_sparse(n, spec, t_ev, t_eta, t_phi, t_eem, t_ehad, k_ev, k_eta, k_phi)
    # an event is empty if no calorimeter channel has an entry
    calo = imgs.index.astype(np.int64) < 2 * spec.n_eta * spec.n_phi
    row = np.repeat(np.arange(n), imgs.nnz)
    has_calo = np.bincount(row[calo], minlength=n) > 0
    keep = np.ones(n, dtype=bool)
    if not has_calo.all():
        bad = np.flatnonzero(~has_calo)
        events = np.asarray(arrays["event"])[bad] if "event" in arrays.fields else bad
        no_tower = t_count[bad] == 0
        why = ("no calorimeter towers at all" if no_tower.all() else
               f"no calorimeter tower inside eta [{spec.eta_min:g}, {spec.eta_max:g})")
        if empty_events == "raise":
            raise EmptyEventError(
                f"{source}: {bad.size} event(s) with {why} (event number(s) "
                f"{', '.join(str(int(e)) for e in events[:5])}{' ...' if bad.size > 5 else ''}); "
                "an empty image cannot be classified. Set calo.image.empty_events: skip to drop them"
            )
        log.warning("%s: dropping %d event(s) with %s", source, bad.size, why)
        keep = has_calo
        imgs = imgs.take(keep)
    return imgs, keep


def build_images(
    files: Sequence[str | os.PathLike[str]],
    sample: str,
    label: int,
    spec: ImageSpec,
    *,
    empty_events: str = "raise",
    chunk_events: int = 2000,
    max_events: int | None = None,
    progress: bool = False,
) -> ImageSet:
    """Sparse images of a sample's ROOT files (hepline format), with weights and labels.

    Args:
        files: the sample's ntuples.
        sample: its name.
        label: 1 signal, 0 background.
        spec: the image grid.
        empty_events: ``raise`` or ``skip`` an event without towers in the image.
        chunk_events: events read per step.
        max_events: read at most this many events.
        progress: log the events imaged after each step.

    Raises:
        CaloInputError: a label other than 0 or 1.
        EmptyEventError: an empty event with ``empty_events="raise"``.
        ZeroWeightError: the sample's Σw or σ is not positive.
    """
    from analysis.io.ingest import iter_chunks

    if label not in (0, 1):
        raise CaloInputError(f"label must be 0 (background) or 1 (signal), got {label}")
    files = [str(f) for f in files]
    norm = sample_normalisation(files, sample)
    parts: list[SparseImages] = []
    events, gen_w = [], []
    done = 0
    for f, start, stop, arrays in iter_chunks(files, BRANCHES, chunk_events=chunk_events,
                                              max_events=max_events):
        imgs, keep = images_from_arrays(arrays, spec, empty_events=empty_events,
                                        source=f"{f} entries {start}-{stop}")
        parts.append(imgs)
        events.append(np.asarray(arrays["event"], dtype=np.uint64)[keep])
        gen_w.append(np.asarray(arrays["genWeight"], dtype=np.float64)[keep])
        done += stop - start
        if progress:
            log.info("%s: %d events imaged", sample, done)
    images = SparseImages.concat(parts)
    gw = np.concatenate(gen_w)
    n = len(images)
    info = dict(norm.to_dict(), label=int(label), n_imaged=n)
    return ImageSet(
        images=images,
        event=np.concatenate(events),
        label=np.full(n, label, dtype=np.int8),
        weight=norm.event_weights(gw),
        gen_weight=gw.astype(np.float32),
        sample_id=np.zeros(n, dtype=np.int16),
        samples=[sample],
        sample_info={sample: info},
    )


# --------------------------------------------------------------------------- HDF5 I/O


@dataclass(frozen=True)
class ImageFileStats:
    """Size of an image file against dense float32 images (:func:`write_images`).

    Attributes:
        events: images written.
        nnz_per_event: stored pixels per image.
        occupancy: stored pixels / all pixels.
        sparse_bytes_per_event_memory: bytes per image in memory (index, value, offset).
        sparse_bytes_per_event_file: bytes per image on disk.
        dense_bytes_per_event_float32: bytes of one dense float32 image.
        dense_over_sparse_memory, dense_over_sparse_file: the dense size over the sparse one.
        file_bytes: the file's size.
    """

    events: int
    nnz_per_event: float
    occupancy: float
    sparse_bytes_per_event_memory: float
    sparse_bytes_per_event_file: float
    dense_bytes_per_event_float32: float
    dense_over_sparse_memory: float
    dense_over_sparse_file: float
    file_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the keys of the written outputs, in their order)."""
        return {"events": self.events, "nnz_per_event": self.nnz_per_event, "occupancy": self.occupancy,
                "sparse_bytes_per_event_memory": self.sparse_bytes_per_event_memory,
                "sparse_bytes_per_event_file": self.sparse_bytes_per_event_file,
                "dense_bytes_per_event_float32": self.dense_bytes_per_event_float32,
                "dense_over_sparse_memory": self.dense_over_sparse_memory,
                "dense_over_sparse_file": self.dense_over_sparse_file, "file_bytes": self.file_bytes}


def write_images(path: str | os.PathLike[str], imgs: ImageSet, *, compression: str = "gzip",
                 compression_level: int = 4, pixel_chunk: int = 262144,
                 extra_attrs: Mapping[str, Any] | None = None,
                 provenance: Mapping[str, Any] | None = None) -> ImageFileStats:
    """Write ``imgs`` to a chunked HDF5 file atomically; returns its size statistics.

    Layout: per-event datasets ``event`` (uint64), ``label`` (int8), ``weight`` (float64),
    ``gen_weight`` (float32), ``sample`` (int16, index into the ``samples`` attribute) and
    ``offsets`` (int64, n+1); per-pixel ``pixel_index`` and ``pixel_value``. Attributes:
    ``format``, ``image`` (JSON :class:`ImageSpec`), ``samples`` and ``sample_info`` (JSON),
    ``weight_definition`` and, if given, ``provenance`` (:mod:`analysis.core.provenance`).

    Args:
        path: the output file.
        imgs: the images.
        compression: ``gzip``, ``lzf`` or ``none``.
        compression_level: the gzip level.
        pixel_chunk: HDF5 chunk length (entries) of the pixel datasets.
        extra_attrs: more attributes (stored as JSON).
        provenance: the provenance record.
    """
    import h5py

    kw: dict[str, Any] = {}
    if compression == "gzip":
        kw = {"compression": "gzip", "compression_opts": compression_level, "shuffle": True}
    elif compression == "lzf":
        kw = {"compression": "lzf", "shuffle": True}
    n = len(imgs)
    im = imgs.images
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            if provenance is not None:
                write_hdf5_provenance(f, provenance)
            f.attrs["image"] = json.dumps(imgs.spec.to_dict())
            f.attrs["samples"] = json.dumps(list(imgs.samples))
            f.attrs["sample_info"] = json.dumps(imgs.sample_info, default=str)
            f.attrs["weight_definition"] = WEIGHT_DEFINITION
            for key, value in (extra_attrs or {}).items():
                f.attrs[key] = json.dumps(value, default=str)
            ev_chunk = (max(1, min(n, 65536)),)
            for name, arr in (("event", imgs.event.astype(np.uint64)), ("label", imgs.label.astype(np.int8)),
                              ("weight", imgs.weight.astype(np.float64)),
                              ("gen_weight", imgs.gen_weight.astype(np.float32)),
                              ("sample", imgs.sample_id.astype(np.int16))):
                f.create_dataset(name, data=arr, chunks=ev_chunk if n else None, **(kw if n else {}))
            f.create_dataset("offsets", data=im.offsets.astype(np.int64),
                             chunks=(max(1, min(n + 1, 65536)),), **kw)
            nnz = int(im.index.size)
            pchunk = (max(1, min(nnz, pixel_chunk)),) if nnz else None
            f.create_dataset("pixel_index", data=im.index, chunks=pchunk, **(kw if nnz else {}))
            f.create_dataset("pixel_value", data=im.value.astype(np.float32), chunks=pchunk,
                             **(kw if nnz else {}))
        file_bytes = Path(tmp).stat().st_size
    dense = n * imgs.spec.size * 4
    return ImageFileStats(
        events=n,
        nnz_per_event=float(im.index.size / n) if n else 0.0,
        occupancy=float(im.index.size / (n * imgs.spec.size)) if n else 0.0,
        sparse_bytes_per_event_memory=float((im.index.nbytes + im.value.nbytes + 8 * n) / n) if n else 0.0,
        sparse_bytes_per_event_file=float(file_bytes / n) if n else 0.0,
        dense_bytes_per_event_float32=float(imgs.spec.size * 4),
        dense_over_sparse_memory=float(dense / (im.index.nbytes + im.value.nbytes + 8 * n)) if n else 0.0,
        dense_over_sparse_file=float(dense / file_bytes) if n else 0.0,
        file_bytes=int(file_bytes),
    )


def read_images(
    path: str | os.PathLike[str],
    *,
    max_events: int | None = None,
    split: tuple[CaloSplit, str] | None = None,
    block_events: int = 65536,
) -> ImageSet:
    """Read an image file written by :func:`write_images`.

    Args:
        path: the image file.
        max_events: only the first events of the file.
        split: ``(calo.split section, name)`` keeps only that split's events; the file is then
            read in blocks of ``block_events`` so that the other splits are never all in memory
            at once.
        block_events: events per block.

    Raises:
        CaloInputError: no such file, or not an image file.
    """
    import h5py

    p = Path(path)
    if not p.is_file():
        raise CaloInputError(f"{p}: image file not found")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise CaloInputError(f"{p}: not a readable HDF5 image file ({exc})") from exc
    with f:
        if f.attrs.get("format") != FORMAT:
            raise CaloInputError(f"{p}: not a hepline calo image file (format {f.attrs.get('format')!r})")
        spec = ImageSpec.from_dict(json.loads(f.attrs["image"]))
        samples = json.loads(f.attrs["samples"])
        info = json.loads(f.attrs["sample_info"])
        n = int(f["event"].shape[0])
        m = n if max_events is None else min(n, int(max_events))
        parts = []
        for start in range(0, max(m, 1), block_events):
            stop = min(start + block_events, m)
            offsets = f["offsets"][start: stop + 1].astype(np.int64)
            images = SparseImages(spec, offsets - offsets[0], f["pixel_index"][offsets[0]: offsets[-1]],
                                  f["pixel_value"][offsets[0]: offsets[-1]])
            part = ImageSet(images, f["event"][start:stop], f["label"][start:stop], f["weight"][start:stop],
                            f["gen_weight"][start:stop], f["sample"][start:stop], samples, info)
            if split is not None:
                part = part.take(split_mask(part.event, split[0], split[1]))
            parts.append(part)
        if len(parts) == 1:
            return parts[0]
        return ImageSet(SparseImages.concat([q.images for q in parts]),
                        np.concatenate([q.event for q in parts]), np.concatenate([q.label for q in parts]),
                        np.concatenate([q.weight for q in parts]), np.concatenate([q.gen_weight for q in parts]),
                        np.concatenate([q.sample_id for q in parts]), samples, info)


def read_image_spec(path: str | os.PathLike[str]) -> ImageSpec:
    """The image grid of an image file."""
    import h5py

    with h5py.File(path, "r") as f:
        return ImageSpec.from_dict(json.loads(f.attrs["image"]))


def load_image_files(files: Sequence[str | os.PathLike[str]], max_events: int | None = None,
                     split: tuple[CaloSplit, str] | None = None) -> ImageSet:
    """Read and join image files (one per sample).

    Args:
        files: image files (:func:`write_images`).
        max_events: read at most this many events of each file.
        split: ``(calo.split section, name)``: keep only that split (:func:`read_images`).

    Raises:
        CaloInputError: no file given, or a bad file.
    """
    if not files:
        raise CaloInputError("no image files given")
    return ImageSet.concat([read_images(f, max_events=max_events, split=split) for f in files])


# --------------------------------------------------------------------------- the images command


@dataclass(frozen=True)
class ImagesResult:
    """What ``hepline calo images`` made of one sample.

    Attributes:
        sample: the sample.
        images: its images.
        stats: the size of the file written.
        build_seconds, write_seconds: wall time to build and to write the images (s).
        files: the ntuples read.
    """

    sample: str
    images: ImageSet
    stats: ImageFileStats
    build_seconds: float
    write_seconds: float
    files: tuple[str, ...]

    @property
    def events_per_s(self) -> float | None:
        """Images built per second (``None`` without a measurable time)."""
        return len(self.images) / self.build_seconds if self.build_seconds > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """The metrics JSON: the file statistics, the sample, times, rate and input files."""
        return {**self.stats.to_dict(), "sample": self.sample, "build_seconds": self.build_seconds,
                "write_seconds": self.write_seconds, "events_per_s": self.events_per_s,
                "files": list(self.files)}


def make_images(
    cfg: Config,
    files: Sequence[str | os.PathLike[str]],
    *,
    sample: str,
    output: str | os.PathLike[str],
    label: int | None = None,
    metrics: str | os.PathLike[str] | None = None,
    max_events: int | None = None,
) -> ImagesResult:
    """``hepline calo images``: the sparse images of one sample's ROOT files, to HDF5.

    Args:
        cfg: the configuration (``calo.image``; ``rpv`` for the default label).
        files: the sample's ntuples.
        sample: its name.
        output: the image file (:func:`write_images`).
        label: 1 signal, 0 background (default: from ``rpv.signal_samples/background_samples``).
        metrics: a JSON file for the size and time metrics (:meth:`ImagesResult.to_dict`).
        max_events: read at most this many events.

    Returns:
        The :class:`ImagesResult`.
    """
    image = cfg.calo.image
    label = sample_label(cfg.rpv, sample, label)
    files = unique_inputs(files)  # a repeated file would enter twice
    t0 = time.perf_counter()
    imgs = build_images(files, sample, label, ImageSpec.from_config(image), empty_events=image.empty_events,
                        chunk_events=image.read_chunk_events, max_events=max_events)
    t1 = time.perf_counter()
    record = provenance_record(stage="calo.images", config=cfg, inputs=files,
                               extra={"sample": sample, "max_events": max_events})
    stats = write_images(output, imgs, compression=image.compression, compression_level=image.compression_level,
                         pixel_chunk=image.pixel_chunk, provenance=record)
    result = ImagesResult(sample, imgs, stats, build_seconds=t1 - t0, write_seconds=time.perf_counter() - t1,
                          files=tuple(str(f) for f in files))
    log.info("%s: %d images, %.0f bytes/event in memory (dense/sparse %.1f), %.0f on disk (%.1f)",
             sample, stats.events, stats.sparse_bytes_per_event_memory, stats.dense_over_sparse_memory,
             stats.sparse_bytes_per_event_file, stats.dense_over_sparse_file)
    if metrics is not None:
        write_json(metrics, result.to_dict(), provenance=record)
    return result


# --------------------------------------------------------------------------- normalisation


def fit_channel_normaliser(images: SparseImages, transform: Transform = "linear") -> Normaliser:
    """The per-channel normalisation ``v -> f(v) / s_c`` of sparse images (zero stays zero).

    ``f`` is the identity (``linear``) or ``log1p``; ``s_c`` is the RMS of ``f(v)`` over every
    pixel of channel ``c`` of the images, empty pixels included (1 for a channel without
    any entry). The result is a :class:`~analysis.ml.normaliser.Normaliser` with the channel
    names, ``mean = 0`` and ``std = s_c`` (float32).

    Args:
        images: the images to fit on (the training split).
        transform: ``linear`` or ``log1p``.

    Raises:
        InputError: an unknown transform.
        CaloInputError: no image.
    """
    names = list(images.spec.channels)
    zero = Normaliser(names, np.zeros(len(names)), np.ones(len(names), np.float32), transform)
    n = len(images)
    if n == 0:
        raise CaloInputError("cannot fit the normalisation on an empty image set")
    v = zero.f(images.value)
    sq = np.bincount(images.channel_of_entries(), weights=v * v, minlength=images.spec.n_channels)
    rms = np.sqrt(sq / (n * images.spec.n_eta * images.spec.n_phi))
    return replace(zero, std=np.where(rms > 0, rms, 1.0).astype(np.float32))


@dataclass(frozen=True)
class ImageNormalisation:
    """A channel normaliser (:func:`fit_channel_normaliser`) with the image grid it belongs to.

    This is the form of ``normalisation.json`` and of the model file's ``normalisation``
    entry: ``{"format", "image", "transform", "scale", "channels", "fitted_on"}``, where
    ``scale`` is the normaliser's ``std``.

    Attributes:
        spec: the image grid.
        normaliser: the per-channel normaliser (zero mean).
        fitted_on: what it was fitted on (split, samples, images).
    """

    spec: ImageSpec
    normaliser: Normaliser
    fitted_on: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(cls, images: SparseImages, transform: Transform = "linear",
            fitted_on: Mapping[str, Any] | None = None) -> ImageNormalisation:
        """:func:`fit_channel_normaliser` on ``images``; ``fitted_on`` gains ``n_images``."""
        return cls(images.spec, fit_channel_normaliser(images, transform), dict(fitted_on or {}, n_images=len(images)))

    @property
    def transform(self) -> Transform:
        """``linear`` or ``log1p``."""
        return self.normaliser.transform

    @property
    def scale(self) -> np.ndarray:
        """The per-channel scale ``s_c`` (float32)."""
        return np.asarray(self.normaliser.std, np.float32)

    def to_dict(self) -> dict[str, Any]:
        """The stored form (see the class docstring)."""
        return {"format": NORM_FORMAT, "image": self.spec.to_dict(), "transform": self.transform,
                "scale": [float(s) for s in self.scale], "channels": list(self.spec.channels),
                "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<normalisation>") -> ImageNormalisation:
        """The normalisation of :meth:`to_dict`.

        Raises:
            ModelMismatchError: not a calo normalisation, or one scale per channel missing.
        """
        if d.get("format") != NORM_FORMAT:
            raise ModelMismatchError(f"{source}: not a calo normalisation (format {d.get('format')!r})")
        spec = ImageSpec.from_dict(d["image"])
        scale = np.asarray(d["scale"], dtype=np.float32)
        if scale.shape != (spec.n_channels,):
            raise ModelMismatchError(f"{source}: {scale.size} scales for {spec.n_channels} channels")
        transform = d.get("transform")
        if transform not in TRANSFORMS:
            raise ModelMismatchError(f"{source}: unknown transform {transform!r}; known: {TRANSFORMS}")
        names = list(spec.channels)
        return cls(spec, Normaliser(names, np.zeros(len(names)), scale, cast(Transform, transform)),
                   dict(d.get("fitted_on", {})))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ImageNormalisation:
        """Read a ``normalisation.json`` file.

        Raises:
            CaloInputError: no such file.
            ModelMismatchError: not a normalisation file.
        """
        p = Path(path)
        if not p.is_file():
            raise CaloInputError(f"normalisation file not found: {p}")
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise ModelMismatchError(f"{p}: not a JSON normalisation file ({exc})") from exc
        return cls.from_dict(d, source=str(p))

    def fingerprint(self) -> str:
        """:func:`analysis.core.config.config_hash` of the stored form without ``fitted_on``."""
        from analysis.core.config import config_hash

        return config_hash({k: v for k, v in self.to_dict().items() if k != "fitted_on"})
