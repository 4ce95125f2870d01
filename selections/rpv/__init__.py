"""The RPV gluino multijet search: the cut-based ATLAS selection on large-R jets
(:mod:`selections.rpv.cuts`), the whole-detector sparse-image CNN (:mod:`selections.rpv.cnn`)
and their comparison (:mod:`selections.rpv.compare`), on the samples of
:mod:`selections.rpv.samples`.

Imports go one way: ``samples`` ← ``cuts``; ``samples`` ← ``cnn.images`` ← ``cnn.loader``,
``cnn.model`` ← ``cnn.train`` ← ``cnn.bench``; ``cuts`` and ``cnn`` ← ``compare``.
"""
