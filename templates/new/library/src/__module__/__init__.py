"""The ${name} library."""

__version__ = "0.1.0"


def hello(who: str) -> str:
    return f"hello, {who}"
