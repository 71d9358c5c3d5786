"""Modal's ``modal.volume`` module: ``Volume``, ``FileEntry`` and ``FileEntryType``."""

from rayfn._volume import FileEntry, Volume
from rayfn.runtime.volumes import FileEntryType

__all__ = ["FileEntry", "FileEntryType", "Volume"]
