"""The acme background worker."""

__version__ = "0.9.0"
