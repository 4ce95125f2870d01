"""Machine-learning infrastructure shared by every network: the one training loop
(:func:`~analysis.ml.training.fit`), seeding, device choice, early stopping, checkpoints with
resume, and the input :class:`~analysis.ml.normaliser.Normaliser`."""
