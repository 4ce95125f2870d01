"""Whole-detector sparse-image CNN (Bhimji et al., arXiv:1711.03573): see docs/calo-cnn.md.

- :mod:`analysis.calo.images`: sparse η×φ images (ECAL, HCAL, track multiplicity), HDF5 I/O,
  train/validation/test split by event number, per-channel normalisation;
- :mod:`analysis.calo.loader`: batches built dense only on the device, with augmentation;
- :mod:`analysis.calo.model`: the CNN, model files;
- :mod:`analysis.calo.train`: σ-weighted training with early stopping and resumable checkpoints;
- :mod:`analysis.calo.evaluate`: weighted ROC, comparison with the cut-based search
  (:mod:`selections.rpv_multijet`), score histograms, plots.

Command line: ``python -m analysis.calo {images,train,evaluate} ...``.
"""
