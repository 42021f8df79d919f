"""Project-name normalization (PEP 503) and host names, kept import-light for the CLI start."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """PEP 503 normalized form: lowercase, runs of -_. become one dash."""
    return _SEPARATORS.sub("-", name).lower()


def is_loopback_host(host: str) -> bool:
    """Whether HOST[:PORT] is this machine: localhost, 127.0.0.0/8 or [::1].

    By name, not by prefix: ``localhost.example.com`` is a remote host.
    """
    import ipaddress

    if host.startswith("["):
        name = host[1:host.find("]")]
    elif host.count(":") > 1:  # a bare IPv6 address, no port
        name = host
    else:
        name = host.rsplit(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
