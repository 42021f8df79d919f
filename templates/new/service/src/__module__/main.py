"""Entry point of the ${name} service."""

from __future__ import annotations

import json

from ${module} import __version__


def status() -> dict[str, str]:
    return {"service": "${name}", "status": "ok", "version": __version__}


def main() -> None:
    print(json.dumps(status()))


if __name__ == "__main__":
    main()
