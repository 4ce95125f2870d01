"""Sample production: Pythia 8 events through a parametric ATLAS-like detector into hepline ntuples.

:mod:`~analysis.generation.processes` (process cards) → :mod:`~analysis.generation.pythia`
(batched generation) → :mod:`~analysis.generation.detector` (tracks, towers, jets, photons,
leptons, truth) → :mod:`~analysis.generation.writer` (ROOT ntuple). The stage functions are
:func:`analysis.generation.produce.produce_shard` (``hepline generate``),
:func:`analysis.generation.produce.write_merged` (``hepline merge``) and
:func:`analysis.generation.hadd.hadd` (``hepline hadd``).
"""

__all__: list[str] = []
