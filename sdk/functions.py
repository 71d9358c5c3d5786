"""Modal's ``modal.functions`` module: ``Function`` and ``FunctionCall``."""

from rayfn._function import Function
from rayfn._function_call import FunctionCall

__all__ = ["Function", "FunctionCall"]
