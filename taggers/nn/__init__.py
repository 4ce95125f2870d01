"""The neural-network taggers: RNNIP on the track sequences (rnnip), DL1 on the jet features (dl1)."""

__all__: list[str] = []
