"""Whole-detector sparse-image CNN (Bhimji et al., arXiv:1711.03573): see docs/calo-cnn.md.

- :mod:`selections.rpv.cnn.images`: sparse η×φ images (ECAL, HCAL, track multiplicity), HDF5 I/O,
  the per-channel normalisation; the ``hepline calo images`` command (:func:`~selections.rpv.cnn.images.make_images`);
- :mod:`selections.rpv.cnn.loader`: batches built dense only on the device, with augmentation;
- :mod:`selections.rpv.cnn.model`: the CNN, model files;
- :mod:`selections.rpv.cnn.train`: σ-weighted training through :func:`analysis.ml.training.fit`
  (``hepline calo train``, :func:`~selections.rpv.cnn.train.train_model`);
- :mod:`selections.rpv.cnn.bench`: throughput on the user's hardware (``hepline calo bench``);
- :mod:`selections.rpv.compare`: weighted ROC, comparison with the cut-based search
  (:mod:`selections.rpv.cuts`), score histograms, limits, plots (``hepline calo evaluate``).

Samples, labels, weights and the split by event number: :mod:`selections.rpv.samples`.
"""
