"""The engine's JSON streams: errors inside them become messages naming the step.

Unit tests over recorded stream items (the shapes dockerd 20.10 sends); the real
daemon is exercised in test_image.py, including a failing build below.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.engine import _follow_build, push
from orchestrator.errors import BuildError, PublishError

BUILD_OK: list[dict[str, Any]] = [
    {"stream": "Step 1/3 : FROM base\n"},
    {"stream": " ---> 93ddfc07f94a\n"},
    {"stream": "Step 2/3 : COPY deps/ /context/deps/\n"},
    {"stream": " ---> Using cache\n"},
    {"stream": " ---> 1b2c3d4e5f60\n"},
    {"stream": "Step 3/3 : LABEL a=b\n"},
    {"aux": {"ID": "sha256:feedface"}},
    {"stream": "Successfully built feedface\n"},
]


def test_follow_build_returns_image_and_cache_hits() -> None:
    lines: list[str] = []
    assert _follow_build(iter(BUILD_OK), "orders", lines.append) == ("sha256:feedface", 1)
    assert lines[0] == "orders: Step 1/3 : FROM base"


def test_error_in_build_stream_names_the_step_and_output() -> None:
    stream: list[dict[str, Any]] = [
        *BUILD_OK[:5],
        {"stream": "Step 3/5 : RUN /opt/installer/bin/pip install -r req.txt\n"},
        {"stream": "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\n"},
        {"errorDetail": {"code": 1, "message": "The command '/bin/sh -c pip' returned a "
                         "non-zero code: 1"},
         "error": "The command '/bin/sh -c pip' returned a non-zero code: 1"},
    ]
    with pytest.raises(BuildError) as info:
        _follow_build(iter(stream), "orders", None)
    assert str(info.value) == (
        "building orders failed at step 3/5 (RUN /opt/installer/bin/pip install -r req.txt): "
        "The command '/bin/sh -c pip' returned a non-zero code: 1\n"
        "  last output:\n"
        "    Step 1/3 : FROM base\n"
        "     ---> 93ddfc07f94a\n"
        "    Step 2/3 : COPY deps/ /context/deps/\n"
        "     ---> Using cache\n"
        "     ---> 1b2c3d4e5f60\n"
        "    Step 3/5 : RUN /opt/installer/bin/pip install -r req.txt\n"
        "    ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\n"
        "hint: fix the cause above and run `orchestrator build` again"
    )


def test_stream_without_image_is_an_error() -> None:
    with pytest.raises(BuildError) as info:
        _follow_build(iter(BUILD_OK[:2]), "orders", None)
    assert str(info.value) == ("building orders ended without an image\n"
                               "hint: run with --verbose to see the engine's output")


class FakeAPI:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def push(self, repository: str, tag: str, stream: bool, decode: bool
             ) -> list[dict[str, Any]]:
        assert (stream, decode) == (True, True)
        return self.items


class FakeClient:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.api = FakeAPI(items)


def test_push_returns_digest() -> None:
    items: list[dict[str, Any]] = [
        {"status": "Pushed"}, {"aux": {"Tag": "1", "Digest": "sha256:abc", "Size": 1}}]
    assert push(FakeClient(items), "127.0.0.1:5000/acme/orders:1") == "sha256:abc"


def test_push_auth_error_says_to_log_in() -> None:
    items: list[dict[str, Any]] = [
        {"status": "Preparing"},
             {"errorDetail": {"message": "denied: requested access to the resource is denied"},
              "error": "denied: requested access to the resource is denied"}]
    with pytest.raises(PublishError) as info:
        push(FakeClient(items), "registry.example.com/acme/orders:1")
    assert str(info.value) == (
        "pushing registry.example.com/acme/orders:1 failed: denied: requested access to the "
        "resource is denied\nhint: log in with `docker login` (orchestrator uses the Docker "
        "config's credentials)")
