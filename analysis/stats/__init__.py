"""Statistics on histograms: the histogram convention and set (:mod:`.histograms`), region
analytic fits (:mod:`.fits`) and CLs limits (:mod:`.limits`)."""

__all__: list[str] = []
