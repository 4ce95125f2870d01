"""hepline flavour tagging: track features, IP2D/IP3D, SV1, MV2, RNNIP, DL1, evaluation.

The stages (``hepline taggers prepare|train|evaluate|decorate``) are :func:`taggers.prepare.prepare`,
:func:`taggers.train.train`, :func:`taggers.evaluate.evaluate` and :func:`taggers.decorate.decorate`;
the in-memory performance is :func:`taggers.performance.evaluate_dataset`.
"""

__all__ = ["TAGGERS"]

#: every tagger of the stages, in the order of tables and plots
TAGGERS: tuple[str, ...] = ("ip2d", "ip3d", "mv2", "rnnip", "dl1")
