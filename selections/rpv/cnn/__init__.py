"""Whole-detector sparse-image CNN (Bhimji et al., arXiv:1711.03573): see docs/calo-cnn.md.

- :mod:`selections.rpv.cnn.images`: sparse η×φ images (ECAL, HCAL, track multiplicity), HDF5 I/O,
  train/validation/test split by event number, per-channel normalisation;
- :mod:`selections.rpv.cnn.loader`: batches built dense only on the device, with augmentation;
- :mod:`selections.rpv.cnn.model`: the CNN, model files;
- :mod:`selections.rpv.cnn.train`: σ-weighted training with early stopping and resumable checkpoints;
- :mod:`selections.rpv.compare`: weighted ROC, comparison with the cut-based search
  (:mod:`selections.rpv.cuts`), score histograms, plots.

Command line: ``python -m selections.rpv.cnn {images,train,evaluate} ...``.
"""
