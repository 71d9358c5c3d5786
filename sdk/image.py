"""Modal's ``modal.image`` module: ``Image``."""

from rayfn._image import Image

__all__ = ["Image"]
