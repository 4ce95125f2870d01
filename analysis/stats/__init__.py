"""Statistics on histograms: the histogram convention and set (:mod:`.histograms`), region
filling (:mod:`.histfill`), analytic fits (:mod:`.fits`) and CLs limits (:mod:`.limits`)."""

__all__: list[str] = []
