"""hepline flavour tagging: track features, IP2D/IP3D, SV1, MV2, RNNIP, DL1, evaluation."""
