"""Batches of dense images built from sparse storage on the training device.

The loader keeps the set as compressed-sparse-row tensors (``offsets``, pixel ``index`` and
``value``): on the device when it is CUDA and the set fits (``storage="auto"``), else in host
memory. Per batch, everything is done with torch ops on the storage device and then on the
compute device:

1. gather the batch's sparse entries (``repeat_interleave`` over the CSR ranges);
2. move them (a few kB per image) to the device, if they are not there already;
3. augment by changing pixel coordinates: a random φ roll, φ flip and η flip per image;
4. normalise the values per channel: ``f(v) / std[c]`` with the transform ``f`` and ``std`` of
   the channel :class:`~analysis.ml.normaliser.Normaliser`
   (:func:`selections.rpv.cnn.images.fit_channel_normaliser`; its mean is 0, so empty pixels
   stay 0);
5. ``index_put_`` them into a zero tensor of shape ``(B, C, n_eta, n_phi)`` on the device.

No dense copy of the data set exists anywhere; only one dense batch at a time, on the device.
The batch order and augmentations of epoch ``e`` come from ``numpy.random.default_rng([seed, e])``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from analysis.core.config.rpv import CaloTraining
from analysis.core.errors import ModelMismatchError
from analysis.ml.normaliser import Normaliser
from selections.rpv.cnn.images import CaloInputError, ImageSet, SparseImages

__all__ = ["AUGMENTATIONS", "Batch", "SparseImageLoader", "gather_rows", "loader_from_config"]

AUGMENTATIONS = ("phi_roll", "phi_flip", "eta_flip")


@dataclass
class Batch:
    """One batch of dense images on the device.

    Attributes:
        x: ``(B, C, n_eta, n_phi)`` float32 normalised images.
        y: ``(B,)`` int64 labels.
        w: ``(B,)`` float32 training weights.
        rows: ``(B,)`` int64 row of each image in the loader's set.
    """

    x: torch.Tensor
    y: torch.Tensor
    w: torch.Tensor
    rows: torch.Tensor


class SparseImageLoader:
    """Iterate over dense, normalised, optionally augmented batches of a sparse image set.

    Args:
        images: an :class:`ImageSet` (labels from it) or bare :class:`SparseImages`.
        normaliser: the per-channel normaliser (:func:`~selections.rpv.cnn.images.fit_channel_normaliser`:
            one feature per channel, named as the image channels, zero mean).
        batch_size: images per batch.
        device: where the dense batches are built.
        weights: per-image training weights (default: ones).
        labels: per-image labels (default: the image set's, else zeros).
        shuffle: a new order every epoch (from ``(seed, epoch)``).
        augment: maps :data:`AUGMENTATIONS` to booleans (``None``: no augmentation); η flips
            need a symmetric η range.
        seed: the base seed of the order and the augmentations.
        storage: where the sparse set is kept: ``auto``, ``device`` or ``cpu``.

    Raises:
        CaloInputError: an empty set, bad sizes or augmentations.
        ModelMismatchError: a normaliser of other channels, or with a non-zero mean.
    """

    def __init__(
        self,
        images: ImageSet | SparseImages,
        normaliser: Normaliser,
        *,
        batch_size: int,
        device: torch.device | str,
        weights: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        shuffle: bool = False,
        augment: Mapping[str, bool] | None = None,
        seed: int = 0,
        storage: str = "auto",
    ) -> None:
        sparse = images.images if isinstance(images, ImageSet) else images
        if labels is None and isinstance(images, ImageSet):
            labels = images.label
        if list(normaliser.names) != list(sparse.spec.channels):
            raise ModelMismatchError(f"the normalisation is for channels {list(normaliser.names)}, the images "
                                     f"have {list(sparse.spec.channels)}")
        if np.any(np.asarray(normaliser.mean) != 0):
            raise ModelMismatchError("a sparse-image normalisation must have zero mean (empty pixels stay 0)")
        self.spec = sparse.spec
        self.n = len(sparse)
        if self.n == 0:
            raise CaloInputError("the image set given to the loader is empty")
        if batch_size < 1:
            raise CaloInputError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.epoch = 0
        self.augment = {k: bool((augment or {}).get(k, False)) for k in AUGMENTATIONS}
        unknown = set(augment or {}) - set(AUGMENTATIONS)
        if unknown:
            raise CaloInputError(f"unknown augmentation(s) {sorted(unknown)}; known: {AUGMENTATIONS}")
        if self.augment["eta_flip"] and not self.spec.eta_symmetric:
            raise CaloInputError(
                f"eta flips need a symmetric eta range, the images have [{self.spec.eta_min:g}, "
                f"{self.spec.eta_max:g})"
            )
        nbytes = sparse.index.size * 4 + sparse.value.nbytes + sparse.offsets.nbytes
        self.storage = _storage_device(storage, self.device, nbytes)
        idx_dtype = torch.int16 if self.spec.size <= 32767 else torch.int32
        st = self.storage
        self._offsets = torch.from_numpy(sparse.offsets.astype(np.int64)).to(st)
        self._index = torch.from_numpy(sparse.index.astype(np.int32)).to(idx_dtype).to(st)
        self._value = torch.from_numpy(sparse.value.astype(np.float32)).to(st)
        if st.type == "cpu" and self.device.type == "cuda":
            self._index, self._value = self._index.pin_memory(), self._value.pin_memory()
        y = np.zeros(self.n, np.int64) if labels is None else np.asarray(labels, np.int64)
        w = np.ones(self.n, np.float32) if weights is None else np.asarray(weights, np.float32)
        if y.shape != (self.n,) or w.shape != (self.n,):
            raise CaloInputError(f"labels {y.shape} / weights {w.shape} do not match {self.n} images")
        self._y = torch.from_numpy(y).to(self.device)
        self._w = torch.from_numpy(w).to(self.device)
        self._scale = torch.as_tensor(1.0 / np.asarray(normaliser.std, np.float32), dtype=torch.float32,
                                      device=self.device)
        self._log1p = normaliser.transform == "log1p"

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Use the order and augmentations of ``epoch`` in the next iteration."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[Batch]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        any_aug = any(self.augment.values())
        if any_aug:
            roll = rng.integers(0, self.spec.n_phi, self.n) if self.augment["phi_roll"] else np.zeros(self.n, np.int64)
            fphi = rng.random(self.n) < 0.5 if self.augment["phi_flip"] else np.zeros(self.n, bool)
            feta = rng.random(self.n) < 0.5 if self.augment["eta_flip"] else np.zeros(self.n, bool)
            aug = torch.from_numpy(np.stack([roll, fphi, feta], axis=1).astype(np.int64)).to(self.device)
        order_t = torch.from_numpy(order.astype(np.int64))
        for start in range(0, self.n, self.batch_size):
            rows = order_t[start: start + self.batch_size]
            x = self.dense_batch(rows.to(self.storage), aug[start: start + self.batch_size] if any_aug else None)
            rows_d = rows.to(self.device)
            yield Batch(x, self._y[rows_d], self._w[rows_d], rows_d)

    def dense_batch(self, rows: torch.Tensor, aug: torch.Tensor | None = None) -> torch.Tensor:
        """The dense normalised images of ``rows`` (on the storage device), built on the device.

        ``aug`` (B, 3): φ roll (pixels), φ flip (0/1), η flip (0/1) per image.
        """
        dev = self.device
        b = int(rows.numel())
        img, flat, val = gather_rows(self._offsets, self._index, self._value, rows, dev)
        n_eta, n_phi = self.spec.n_eta, self.spec.n_phi
        npix = n_eta * n_phi
        ch = flat // npix
        rem = flat - ch * npix
        ieta = rem // n_phi
        iphi = rem - ieta * n_phi
        if aug is not None:
            a = aug.to(dev)[img]
            iphi = torch.remainder(iphi + a[:, 0], n_phi)
            iphi = torch.where(a[:, 1] > 0, n_phi - 1 - iphi, iphi)
            ieta = torch.where(a[:, 2] > 0, n_eta - 1 - ieta, ieta)
        if self._log1p:
            val = torch.log1p(torch.clamp(val, min=0.0))
        val = val * self._scale[ch]
        out = torch.zeros(b * self.spec.size, dtype=torch.float32, device=dev)
        out[((img * self.spec.n_channels + ch) * n_eta + ieta) * n_phi + iphi] = val
        return out.view(b, *self.spec.shape)


def gather_rows(offsets: torch.Tensor, index: torch.Tensor, value: torch.Tensor, rows: torch.Tensor,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The stored pixels of the images ``rows`` of a CSR set, moved to ``device``.

    Args:
        offsets, index, value: the CSR tensors (on one storage device).
        rows: the images wanted (int64, on the storage device).
        device: where the result goes.

    Returns:
        ``(img, flat, value)``: per pixel, its image's position in ``rows``, its flat pixel index
        (int64) and its value (float32).
    """
    st = offsets.device
    start = offsets[rows]
    counts = offsets[rows + 1] - start
    total = int(counts.sum())
    img = torch.repeat_interleave(torch.arange(int(rows.numel()), device=st), counts)
    first = torch.cumsum(counts, 0) - counts
    pos = torch.arange(total, device=st) + torch.repeat_interleave(start - first, counts)
    flat = index[pos].to(device, non_blocking=True).long()
    val = value[pos].to(device, non_blocking=True)
    return img.to(device, non_blocking=True), flat, val


def _storage_device(storage: str, device: torch.device, nbytes: int) -> torch.device:
    if storage == "cpu":
        return torch.device("cpu")
    if storage == "device":
        return device
    if storage != "auto":
        raise CaloInputError(f"unknown loader storage {storage!r}; use auto, device or cpu")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return device if nbytes < free / 4 else torch.device("cpu")
    return device


def loader_from_config(images: ImageSet, normaliser: Normaliser, training: CaloTraining,
                       device: torch.device, *, weights: np.ndarray | None, shuffle: bool, augment: bool,
                       seed: int, batch_size: int | None = None) -> SparseImageLoader:
    """A :class:`SparseImageLoader` with the batch size, augmentations and storage of
    ``calo.training`` (``augment=False``: none; ``batch_size`` overrides the section's)."""
    return SparseImageLoader(
        images, normaliser, batch_size=batch_size or int(training.batch_size), device=device,
        weights=weights, shuffle=shuffle, augment=training.augment.to_dict() if augment else None,
        seed=seed, storage=training.storage,
    )
