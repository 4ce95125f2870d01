"""Figures: the common style and saving (:mod:`.style`), the HH paper figures (:mod:`.hh`) and
the ``plots`` stage (:mod:`.paper`). Plot functions take data and return a matplotlib Figure."""

__all__: list[str] = []
