"""Modal's ``modal.retries`` module: ``Retries``."""

from rayfn._retries import Retries

__all__ = ["Retries"]
