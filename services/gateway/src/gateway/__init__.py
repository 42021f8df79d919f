"""The acme gateway service."""

__version__ = "1.2.0"
