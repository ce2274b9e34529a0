"""memgate: a memory regression gate for Python services."""

__version__ = "0.2.0"
