"""Throughput of the CNN on the user's hardware: the ``hepline calo bench`` command.

Measures, in images per second, the sparse loader alone (dense batches with augmentation),
training steps (forward, backward, Adam) and inference (:func:`~selections.rpv.cnn.train.predict`),
with the configured network or one with another number of filters. See docs/calo-cnn.md.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from analysis.core.atomic import write_json
from analysis.core.config import Config
from analysis.core.config.rpv import CaloModel
from analysis.core.provenance import provenance_record
from analysis.ml.training import pick_device, seed_everything, synchronize, torch_threads
from selections.rpv.cnn.images import CaloInputError, ImageSet, ImageSpec, fit_channel_normaliser, load_image_files
from selections.rpv.cnn.loader import loader_from_config
from selections.rpv.cnn.model import build_model
from selections.rpv.cnn.train import batch_loss, predict

log = logging.getLogger(__name__)

__all__ = ["CnnBenchmark", "bench", "benchmark"]


@dataclass(frozen=True)
class CnnBenchmark:
    """Measured throughput of the CNN (images per second, the loader included).

    Attributes:
        device: the torch device; device_name: the GPU's name or ``cpu``.
        torch_threads: torch CPU threads.
        model_cfg: the network measured; model_parameters: its parameters.
        image: the image grid.
        batch_size: training batch size.
        loader_images_per_s: dense batches from the loader alone.
        train_images_per_s: training steps (forward, backward, Adam).
        inference_images_per_s: scoring in eval mode; inference_images: images scored.
        timed_train_images: images of the timed training steps.
    """

    device: str
    device_name: str
    torch_threads: int
    model_cfg: CaloModel
    model_parameters: int
    image: ImageSpec
    batch_size: int
    loader_images_per_s: float
    train_images_per_s: float
    inference_images_per_s: float
    inference_images: int
    timed_train_images: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the keys of the written outputs, in their order)."""
        return {
            "device": self.device, "device_name": self.device_name, "torch_threads": self.torch_threads,
            "model_cfg": self.model_cfg.to_dict(), "model_parameters": self.model_parameters,
            "image": self.image.to_dict(), "batch_size": self.batch_size,
            "loader_images_per_s": self.loader_images_per_s, "train_images_per_s": self.train_images_per_s,
            "inference_images_per_s": self.inference_images_per_s, "inference_images": self.inference_images,
            "timed_train_images": self.timed_train_images,
        }


def benchmark(
    cfg: Config,
    data: ImageSet,
    *,
    device: str | torch.device | None = None,
    filters: int | None = None,
    batches: int = 5,
) -> CnnBenchmark:
    """Throughput of the loader alone, of training steps and of inference.

    Training: ``batches`` timed steps of ``calo.training.batch_size`` augmented images from the
    loader, after one warm-up step. Inference: the same number of images scored in eval mode
    with ``calo.evaluation.batch_size``. Loader: dense batches only.

    Args:
        cfg: the configuration (``calo``, the top-level ``seed`` for the initial weights).
        data: the images (at least ``(batches + 1) × batch_size``).
        device: where to measure (default :func:`~analysis.ml.training.pick_device`).
        filters: overrides ``calo.model.filters``.
        batches: timed training batches.

    Raises:
        CaloInputError: too few images.
    """
    calo, training = cfg.calo, cfg.calo.training
    dev = pick_device(device)
    with torch_threads(training.threads):
        normaliser = fit_channel_normaliser(data.images, calo.normalisation.transform)
        model_cfg = calo.model.replace(filters=filters) if filters else calo.model
        seed_everything(int(cfg.seed))
        model = build_model(data.spec, model_cfg).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=float(training.learning_rate))
        bs = int(training.batch_size)
        loader = loader_from_config(data, normaliser, training, dev, weights=None, shuffle=True, augment=True, seed=0)
        need = (batches + 1) * bs
        if len(data) < need:
            raise CaloInputError(f"benchmark needs {need} images, the files give {len(data)}")

        def timed(fn: Callable[[], int]) -> tuple[float, int]:
            synchronize(dev)
            t0 = time.perf_counter()
            n = fn()
            synchronize(dev)
            return time.perf_counter() - t0, n

        def loader_only() -> int:
            n = 0
            for i, b in enumerate(loader):
                if i >= batches:
                    break
                n += b.y.numel()
            return n

        it = iter(loader)
        model.train()
        loss, _ = batch_loss(model, next(it))  # warm-up
        opt.zero_grad()
        loss.backward()
        opt.step()

        def train_steps() -> int:
            n = 0
            for _ in range(batches):
                loss, size = batch_loss(model, next(it))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                n += size
            return n

        t_load, n_load = timed(loader_only)
        t_train, n_train = timed(train_steps)
        sub = data.take(np.arange(min(len(data), batches * bs)))
        _, rate = predict(model, sub, normaliser, dev, batch_size=int(calo.evaluation.batch_size))
        threads = torch.get_num_threads()
    return CnnBenchmark(
        device=str(dev), device_name=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        torch_threads=threads, model_cfg=model_cfg,
        model_parameters=int(sum(p.numel() for p in model.parameters())), image=data.spec, batch_size=bs,
        loader_images_per_s=n_load / t_load, train_images_per_s=n_train / t_train,
        inference_images_per_s=rate.images_per_s, inference_images=rate.images, timed_train_images=n_train,
    )


def bench(
    cfg: Config,
    image_files: Sequence[str | os.PathLike[str]],
    *,
    device: str | torch.device | None = None,
    filters: int | None = None,
    batches: int = 5,
    max_events: int | None = 2000,
    output: str | os.PathLike[str] | None = None,
) -> CnnBenchmark:
    """``hepline calo bench``: :func:`benchmark` on image files.

    Args:
        cfg: the configuration.
        image_files: image files (:func:`~selections.rpv.cnn.images.make_images`).
        device, filters, batches: as for :func:`benchmark`.
        max_events: events read per image file.
        output: a JSON file to write (with provenance); ``None``: none.
    """
    result = benchmark(cfg, load_image_files(image_files, max_events), device=device, filters=filters,
                       batches=batches)
    log.info("calo CNN on %s: loader %.0f, training %.0f, inference %.0f images/s", result.device,
             result.loader_images_per_s, result.train_images_per_s, result.inference_images_per_s)
    if output is not None:
        write_json(output, result.to_dict(), provenance=provenance_record(
            stage="calo.bench", config=cfg, inputs=image_files,
            extra={"device": None if device is None else str(device), "filters": filters, "batches": batches}))
    return result
