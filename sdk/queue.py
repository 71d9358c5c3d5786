"""Modal's ``modal.queue`` module: ``Queue``."""

from rayfn._stores import Queue

__all__ = ["Queue"]
