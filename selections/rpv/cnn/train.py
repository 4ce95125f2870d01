"""Training of the whole-detector CNN on sparse images (σ-weighted, early stopping, resumable).

* Data: the image files of the signal and background samples (:mod:`selections.rpv.cnn.images`),
  split by event number (``calo.split``); the validation split drives early stopping, the test
  split is never read here.
* Weights: each event carries ``weight = genWeight · σ / Σw`` of its sample, so the QCD slices
  combine as in nature. For the loss they are rescaled per class,
  ``w' = w · (N / 2) / W_class`` (``W_class`` the class's total weight, ``N`` the number of
  images): signal and background each carry half of the total, and the mean weight is 1, so
  the loss has the scale of an unweighted one and Adam's learning rate keeps its meaning.
  Within the background the QCD slices keep their relative σ weights.
* Loss: the weighted mean cross-entropy ``Σ w' CE / B`` per batch; Adam; early stopping on the
  validation loss (same weights, no augmentation); the best epoch's weights are kept.
* Checkpoint ``calo_cnn.ckpt.pt`` after every epoch (model, optimizer, early stopping, history,
  best weights); a rerun with the same configuration and data resumes after the last finished
  epoch. Epoch ``e`` depends only on (seed, e) and the state at its start, so an interrupted
  and resumed run ends with the same weights as an uninterrupted one (same device/threads).
* Device: CUDA when present, else CPU (``HEPLINE_DEVICE`` or ``device=`` override).

Outputs in ``outdir``: ``calo_cnn.pt`` (model + image grid + normalisation, see
:mod:`selections.rpv.cnn.model`), ``normalisation.json``, ``history.json`` (losses, images/s).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from analysis.core.atomic import write_json
from selections.rpv.cnn.images import (
    CaloInputError,
    ChannelNormaliser,
    ImageSet,
    ZeroWeightError,
    read_images,
)
from selections.rpv.cnn.loader import SparseImageLoader, loader_from_config
from selections.rpv.cnn.model import CaloCNN, build_model, save_model
from analysis.core.config import config_hash, schema, validate_section
from analysis.core.provenance import provenance_record

# the shared training utilities (the only place selections.rpv.cnn imports them)
from analysis.ml.training import Checkpoint, EarlyStopping, epoch_seed, pick_device, seed_everything

log = logging.getLogger(__name__)

MODEL_NAME = "calo_cnn"

__all__ = ["balanced_weights", "calo_config", "check_training_set", "load_image_files", "pick_device",
           "predict", "train"]


def calo_config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """The filled ``calo`` section from a full config, the section itself, or ``None``."""
    own = set(schema()["properties"]["calo"]["properties"])
    if cfg and set(cfg) <= own:
        return validate_section("calo", dict(cfg), source="calo")
    return validate_section("calo", None if cfg is None else cfg.get("calo"), source="calo")


def load_image_files(files: Sequence[str | os.PathLike[str]], max_events: int | None = None,
                     split: tuple[Mapping[str, Any], str] | None = None) -> ImageSet:
    """Read and concatenate image files (one per sample); ``split=(split_cfg, name)`` keeps one split."""
    if not files:
        raise CaloInputError("no image files given")
    return ImageSet.concat([read_images(f, max_events=max_events, split=split) for f in files])


def check_training_set(images: ImageSet, what: str) -> None:
    """Both classes present with a positive total weight, finite weights."""
    if len(images) == 0:
        raise CaloInputError(f"the {what} is empty")
    if not np.all(np.isfinite(images.weight)):
        raise CaloInputError(f"the {what} holds {int(np.sum(~np.isfinite(images.weight)))} non-finite weight(s)")
    for label, name in ((1, "signal"), (0, "background")):
        sel = images.label == label
        if not sel.any():
            raise CaloInputError(f"the {what} has no {name} events (label {label})")
        total = float(images.weight[sel].sum())
        if not total > 0:
            samples = sorted({images.samples[i] for i in np.unique(images.sample_id[sel])})
            raise ZeroWeightError(
                f"the {what}'s {name} events (samples {samples}) have a total weight of {total:g}"
            )


def balanced_weights(weight: np.ndarray, label: np.ndarray) -> np.ndarray:
    """``w · (N/2) / W_class``: each class carries half of the total weight, mean weight 1."""
    w = np.asarray(weight, dtype=np.float64)
    out = np.empty_like(w)
    n = w.size
    for c in (0, 1):
        sel = label == c
        tot = w[sel].sum()
        if not tot > 0:
            raise ZeroWeightError(f"class {c} has a total weight of {tot:g}")
        out[sel] = w[sel] * (0.5 * n / tot)
    return out.astype(np.float32)


def _loss(model: CaloCNN, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (F.cross_entropy(model(x), y, reduction="none") * w).sum()


@torch.inference_mode()
def _validation_loss(model: CaloCNN, loader: SparseImageLoader) -> float:
    model.eval()
    total, norm = 0.0, 0.0
    for b in loader:
        total += float(_loss(model, b.x, b.y, b.w))
        norm += float(b.w.sum())
    return total / norm


@torch.inference_mode()
def predict(model: CaloCNN, images: ImageSet, normaliser: ChannelNormaliser, device: torch.device | str,
            batch_size: int = 512, storage: str = "auto") -> tuple[np.ndarray, dict[str, float]]:
    """Signal scores of every image (in order) and the inference rate (images/s, loader included).

    The score is the softmax signal probability, computed in float64 as sigmoid(l1 − l0) so that
    it does not saturate at 1 (float32 would tie every event with l1 − l0 > 17 at exactly 1).
    """
    model.spec.check_same(images.spec, "the image file", "the model")
    dev = torch.device(device)
    model.to(dev).eval()
    loader = SparseImageLoader(images, normaliser, batch_size=batch_size, device=dev, storage=storage)
    out = torch.empty(len(images), dtype=torch.float64, device=dev)
    _sync(dev)
    t0 = time.perf_counter()
    for b in loader:
        logits = model(b.x).double()
        out[b.rows] = torch.sigmoid(logits[:, 1] - logits[:, 0])
    _sync(dev)
    dt = time.perf_counter() - t0
    return out.cpu().numpy(), {"images": len(images), "seconds": dt,
                               "images_per_s": len(images) / dt if dt > 0 else float("nan")}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def train(
    cfg: Mapping[str, Any] | None,
    image_files: Sequence[str | os.PathLike[str]] | ImageSet,
    outdir: str | os.PathLike[str],
    *,
    seed: int | None = None,
    device: str | torch.device | None = None,
    resume: bool = True,
    progress: bool | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train the CNN; returns the summary also written to ``history.json``.

    ``cfg``: a full hepline config (``calo`` section and top-level ``seed``), or the ``calo``
    section (then ``seed`` or ``calo.training.seed`` gives the seed).
    """
    full = dict(cfg or {})
    ccfg = calo_config(full)
    tcfg = ccfg["training"]
    if seed is None:
        seed = tcfg["seed"] if tcfg["seed"] is not None else full.get("seed", 0)
    seed = int(seed)
    outdir = Path(outdir)
    dev = pick_device(device)
    if tcfg["threads"]:
        torch.set_num_threads(int(tcfg["threads"]))

    if isinstance(image_files, ImageSet):
        train_set = image_files.split(ccfg["split"], "train")
        val_set = image_files.split(ccfg["split"], "validation")
    else:
        cap = tcfg["max_events_per_sample"]
        train_set = load_image_files(image_files, cap, split=(ccfg["split"], "train"))
        val_set = load_image_files(image_files, cap, split=(ccfg["split"], "validation"))
    check_training_set(train_set, "training split")
    check_training_set(val_set, "validation split")
    normaliser = ChannelNormaliser.fit(
        train_set.images, ccfg["normalisation"]["transform"],
        fitted_on={"split": "train", "samples": list(train_set.samples)},
    )
    w_train = balanced_weights(train_set.weight, train_set.label)
    w_val = balanced_weights(val_set.weight, val_set.label)
    train_loader = loader_from_config(train_set, normaliser, tcfg, dev, weights=w_train, shuffle=True,
                                      augment=True, seed=seed)
    val_loader = loader_from_config(val_set, normaliser, tcfg, dev, weights=w_val, shuffle=False,
                                    augment=False, seed=seed, batch_size=max(512, int(tcfg["batch_size"])))

    run_hash = config_hash({
        # max_epochs is left out so that a finished run can be extended by raising it
        "model": ccfg["model"], "training": {k: v for k, v in tcfg.items() if k not in ("threads", "max_epochs")},
        "image": ccfg["image"], "split": ccfg["split"], "normalisation": normaliser.to_dict()["scale"],
        "seed": seed, "data": [len(train_set), float(train_set.weight.sum()), len(val_set)],
    })
    seed_everything(seed)
    model = build_model(train_set.spec, ccfg["model"]).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(tcfg["learning_rate"]))
    stopper = EarlyStopping(int(tcfg["patience"]), float(tcfg["min_delta"]))
    history: list[dict[str, float]] = []
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch, resumed_from = 0, None
    ckpt = Checkpoint(outdir / f"{MODEL_NAME}.ckpt.pt")
    restored = ckpt.restore(model=model, optimizer=optimizer, stopper=stopper,
                            config_hash=run_hash) if resume else None
    if restored is not None:
        start_epoch, resumed_from = restored.start_epoch, restored.resumed_from
        history, best_state = restored.history, restored.best_state

    max_epochs = int(tcfg["max_epochs"])
    n_train = len(train_set)
    for epoch in range(start_epoch, max_epochs):
        if stopper.should_stop:
            break
        torch.manual_seed(epoch_seed(seed, epoch))
        train_loader.set_epoch(epoch)
        model.train()
        _sync(dev)
        t0 = time.perf_counter()
        run_loss = 0.0
        bar = tqdm(total=len(train_loader), desc=f"calo CNN epoch {epoch + 1}/{max_epochs}", unit="batch",
                   leave=False, disable=(not progress) if progress is not None else None)
        try:
            for i, b in enumerate(train_loader):
                loss = _loss(model, b.x, b.y, b.w) / b.y.numel()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                lv = float(loss.detach())
                run_loss += lv * b.y.numel()
                bar.update(1)
                if i % 10 == 0:
                    bar.set_postfix(loss=f"{lv:.4f}")
        finally:
            bar.close()
        _sync(dev)
        seconds = time.perf_counter() - t0
        train_loss = run_loss / n_train
        val_loss = _validation_loss(model, val_loader)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise FloatingPointError(f"non-finite loss at epoch {epoch + 1} (train {train_loss}, val {val_loss})")
        if stopper.step(val_loss, epoch):
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "seconds": seconds,
                  "images_per_s": n_train / seconds if seconds > 0 else float("nan")}
        history.append(record)
        log.info("epoch %d/%d: train loss %.5f, val loss %.5f, %.1f images/s%s", epoch + 1, max_epochs,
                 train_loss, val_loss, record["images_per_s"], " (best)" if stopper.best_epoch == epoch else "")
        ckpt.save(model=model, optimizer=optimizer, epoch=epoch, best_metric=stopper.best,
                  normaliser=normaliser.to_dict(), config_hash=run_hash,
                  extra={"early_stopping": stopper.state_dict(), "history": history, "best_state": best_state})
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
        if stopper.should_stop:
            log.info("early stopping after epoch %d (best epoch %d)", epoch + 1, stopper.best_epoch + 1)
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    rates = [h["images_per_s"] for h in history if math.isfinite(h["images_per_s"])]
    summary = {
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "seed": seed,
        "config_hash": run_hash,
        "n_train": n_train,
        "n_validation": len(val_set),
        "train_per_sample": {s: int(np.sum(train_set.sample_id == i)) for i, s in enumerate(train_set.samples)},
        "epochs_run": len(history),
        "resumed_from_epoch": resumed_from,
        "best_epoch": stopper.best_epoch,
        "best_val_loss": stopper.best,
        "stopped_early": stopper.should_stop,
        "train_images_per_s": float(np.median(rates)) if rates else float("nan"),
        "history": history,
        "model_parameters": int(sum(p.numel() for p in model.parameters())),
        "normalisation": normaliser.to_dict(),
    }
    record = provenance_record(
        stage="calo.train", config=full or {"calo": ccfg}, seeds={"training": seed},
        inputs=() if isinstance(image_files, ImageSet) else image_files,
        extra={"device": str(dev), "torch_threads": torch.get_num_threads()},
    )
    save_model(outdir / f"{MODEL_NAME}.pt", model, normaliser, ccfg["model"],
               info={k: v for k, v in summary.items() if k not in ("history", "normalisation")},
               provenance=record)
    write_json(outdir / "normalisation.json", normaliser.to_dict(), provenance=record)
    write_json(outdir / "history.json", summary, provenance=record)
    summary["model"] = model
    summary["model_path"] = outdir / f"{MODEL_NAME}.pt"
    return summary


def benchmark(
    cfg: Mapping[str, Any] | None,
    image_files: Sequence[str | os.PathLike[str]],
    *,
    device: str | torch.device | None = None,
    filters: int | None = None,
    batches: int = 5,
    max_events: int | None = 2000,
) -> dict[str, Any]:
    """Throughput of the loader alone, of training steps and of inference (images/s).

    Training: ``batches`` timed steps (forward, backward, Adam) of ``calo.training.batch_size``
    augmented images from the loader, after one warm-up step. Inference: the same number of
    images scored in eval mode with ``calo.evaluation.batch_size``. Loader: dense batches only.
    """
    full = dict(cfg or {})
    ccfg = calo_config(full)
    tcfg = ccfg["training"]
    if tcfg["threads"]:
        torch.set_num_threads(int(tcfg["threads"]))
    dev = pick_device(device)
    data = load_image_files(image_files, max_events)
    normaliser = ChannelNormaliser.fit(data.images, ccfg["normalisation"]["transform"])
    mcfg = dict(ccfg["model"], **({"filters": filters} if filters else {}))
    seed_everything(int(full.get("seed", 0)))
    model = build_model(data.spec, mcfg).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=float(tcfg["learning_rate"]))
    bs = int(tcfg["batch_size"])
    loader = loader_from_config(data, normaliser, tcfg, dev, weights=None, shuffle=True, augment=True, seed=0)
    need = (batches + 1) * bs
    if len(data) < need:
        raise CaloInputError(f"benchmark needs {need} images, the files give {len(data)}")

    def timed(fn: Callable[[], int]) -> tuple[float, int]:
        _sync(dev)
        t0 = time.perf_counter()
        n = fn()
        _sync(dev)
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
    b = next(it)  # warm-up
    loss = _loss(model, b.x, b.y, b.w) / b.y.numel()
    opt.zero_grad()
    loss.backward()
    opt.step()

    def train_steps() -> int:
        n = 0
        for _ in range(batches):
            b = next(it)
            loss = _loss(model, b.x, b.y, b.w) / b.y.numel()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += b.y.numel()
        return n

    t_load, n_load = timed(loader_only)
    t_train, n_train = timed(train_steps)
    sub = data.take(np.arange(min(len(data), batches * bs)))
    _, rate = predict(model, sub, normaliser, dev, batch_size=int(ccfg["evaluation"]["batch_size"]))
    return {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
        "model_cfg": mcfg,
        "model_parameters": int(sum(p.numel() for p in model.parameters())),
        "image": data.spec.to_dict(),
        "batch_size": bs,
        "loader_images_per_s": n_load / t_load,
        "train_images_per_s": n_train / t_train,
        "inference_images_per_s": rate["images_per_s"],
        "inference_images": rate["images"],
        "timed_train_images": n_train,
    }
