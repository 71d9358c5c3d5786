"""Modal's ``modal.dict`` module: ``Dict``."""

from rayfn._stores import Dict

__all__ = ["Dict"]
