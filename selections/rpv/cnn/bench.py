"""Throughput of the CNN on the user's hardware: the ``hepline calo bench`` command.

Measures, in images per second, the sparse loader alone (dense batches with augmentation),
training steps (forward, backward, Adam) and inference (:func:`~selections.rpv.cnn.train.predict`),
with the configured network or one with another number of filters. See docs/calo-cnn.md.

``hepline calo throughput`` (:func:`throughput`) measures the CNN claim's networks side by side
in one process: the configured CNN, the paper's 128-filter CNN and the point-cloud network.
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

__all__ = ["CnnBenchmark", "NetworkThroughput", "bench", "benchmark", "network_throughput", "throughput"]


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
    data = data.rebin(calo.model.input_rebin)
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


# --------------------------------------------------------------------------- the claim's networks, side by side


@dataclass(frozen=True)
class NetworkThroughput:
    """Training and inference rate of one network (events per second, the loader included).

    Attributes:
        network: ``cnn``, ``point_cloud`` or ``paper_cnn`` (the 128-filter reference).
        description: the network in words (filters, grid, layers).
        parameters: trainable parameters.
        batch_size: training batch size.
        train_images_per_s: timed training steps (forward, backward, Adam; augmented batches).
        inference_images_per_s: scoring in eval mode.
        timed_train_images, inference_images: events of the two measurements.
    """

    network: str
    description: str
    parameters: int
    batch_size: int
    train_images_per_s: float
    inference_images_per_s: float
    timed_train_images: int
    inference_images: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form."""
        return {"network": self.network, "description": self.description, "parameters": self.parameters,
                "batch_size": self.batch_size, "train_images_per_s": self.train_images_per_s,
                "inference_images_per_s": self.inference_images_per_s,
                "timed_train_images": self.timed_train_images, "inference_images": self.inference_images}


def _point_cloud_throughput(cfg: Config, data: ImageSet, dev: torch.device, batches: int) -> NetworkThroughput:
    from selections.rpv.cnn.pointcloud import (
        PointCloudLoader,
        build_point_cloud,
        point_batch_loss,
        predict_point_cloud,
    )

    pc = cfg.calo.point_cloud
    bs = int(pc.batch_size)
    if len(data) < (batches + 1) * bs:
        raise CaloInputError(f"the point-cloud throughput needs {(batches + 1) * bs} images, have {len(data)}")
    seed_everything(int(cfg.seed))
    model = build_point_cloud(data.spec, pc).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=float(pc.learning_rate))
    loader = PointCloudLoader(data, batch_size=bs, device=dev, shuffle=True,
                              augment=cfg.calo.training.augment.to_dict(), seed=0)
    it = iter(loader)
    model.train()
    n = 0
    for i in range(batches + 1):
        if i == 1:  # the first step is a warm-up
            synchronize(dev)
            t0, n = time.perf_counter(), 0
        loss, size = point_batch_loss(model, next(it))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += size
    synchronize(dev)
    t_train = time.perf_counter() - t0
    sub = data.take(np.arange(min(len(data), batches * bs)))
    _, rate = predict_point_cloud(model, sub, dev, batch_size=int(cfg.calo.evaluation.batch_size))
    return NetworkThroughput(
        network="point_cloud", description=f"DeepSets, phi {list(pc.phi_layers)}, F {list(pc.f_layers)}",
        parameters=int(sum(p.numel() for p in model.parameters())), batch_size=bs, train_images_per_s=n / t_train,
        inference_images_per_s=rate.images_per_s, timed_train_images=n, inference_images=rate.images)


def network_throughput(
    cfg: Config,
    data: ImageSet,
    *,
    networks: Sequence[str] = ("cnn", "point_cloud"),
    paper_cnn: bool = True,
    device: str | torch.device | None = None,
    batches: int = 10,
) -> list[NetworkThroughput]:
    """Training and inference rates of the claim's networks, measured one after the other in
    one process on the same images (so that they share the machine's state).

    Args:
        cfg: the configuration (``calo.model`` with its ``input_rebin``, ``calo.point_cloud``,
            ``calo.training`` threads and augmentation).
        data: the images (at least ``(batches + 1) ×`` the largest batch size).
        networks: ``cnn`` and/or ``point_cloud``.
        paper_cnn: also the paper's network (128 filters, dense 512, the files' grid) as a reference.
        device: where to measure.
        batches: timed training batches per network.
    """
    dev = pick_device(device)
    out = []
    with torch_threads(cfg.calo.training.threads):
        if "cnn" in networks:
            b = benchmark(cfg, data, device=dev, batches=batches)
            m = b.model_cfg
            out.append(NetworkThroughput(
                "cnn", f"CNN {m.filters} filters, dense {m.dense}, {b.image.n_eta} x {b.image.n_phi}",
                b.model_parameters, b.batch_size, b.train_images_per_s, b.inference_images_per_s,
                b.timed_train_images, b.inference_images))
        if paper_cnn:
            paper = cfg.replace(calo=cfg.calo.replace(model=cfg.calo.model.replace(
                filters=128, dense=512, n_conv=3, input_rebin=1)))
            b = benchmark(paper, data, device=dev, batches=max(2, batches // 3))
            out.append(NetworkThroughput(
                "paper_cnn", f"paper CNN 128 filters, dense 512, {b.image.n_eta} x {b.image.n_phi}",
                b.model_parameters, b.batch_size, b.train_images_per_s, b.inference_images_per_s,
                b.timed_train_images, b.inference_images))
        if "point_cloud" in networks:
            out.append(_point_cloud_throughput(cfg, data, dev, batches))
    return out


def throughput(
    cfg: Config,
    image_files: Sequence[str | os.PathLike[str]],
    *,
    device: str | torch.device | None = None,
    output: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """``hepline calo throughput``: :func:`network_throughput` of ``calo.claim.networks`` and the
    paper CNN on the first ``calo.claim.bench_events`` events of each image file.

    Returns:
        ``{"device", "device_name", "torch_threads", "events", "networks": {name: ...}}``
        (also written to ``output`` with provenance).
    """
    claim = cfg.calo.claim
    data = load_image_files(image_files, int(claim.bench_events))
    dev = pick_device(device)
    rates = network_throughput(cfg, data, networks=claim.networks, device=dev, batches=int(claim.bench_batches))
    with torch_threads(cfg.calo.training.threads):
        threads = torch.get_num_threads()
    result = {"device": str(dev), "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
              "torch_threads": threads, "events": len(data), "networks": {r.network: r.to_dict() for r in rates}}
    for r in rates:
        log.info("%s: training %.0f, inference %.0f images/s on %s", r.description, r.train_images_per_s,
                 r.inference_images_per_s, dev)
    if output is not None:
        write_json(output, result, provenance=provenance_record(stage="calo.throughput", config=cfg,
                                                                inputs=image_files, extra={"device": str(dev)}))
    return result
