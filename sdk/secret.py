"""Modal's ``modal.secret`` module: ``Secret``."""

from rayfn._secret import Secret

__all__ = ["Secret"]
