"""Modal's ``modal.volume`` module: ``Volume`` and ``FileEntry``."""

from rayfn._volume import FileEntry, Volume

__all__ = ["FileEntry", "Volume"]
