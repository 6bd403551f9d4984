"""w2sbench: a plugin-based benchmark for weak-to-strong trustworthiness in language models."""

from w2sbench.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
