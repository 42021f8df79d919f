"""Secrets: a token in an index URL never reaches output, a cache file name or a cache file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.index.auth import redact_url
from orchestrator.index.listing import LISTING_KIND
from tests.conftest import MakeWorkspace, index_manifest, pyproject
from tests.support.indexserver import IndexServer

TOKEN = "pypi-AgEIcHlwaS5vcmcCJGQ4ZjM5YTk3LWY3Y2ItNDc2MC1iYzFkLTQ1ZDcwNzQ5"


@pytest.fixture
def token_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[IndexServer]:
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("orchestrator.index.transport.BACKOFF", 0.01)
    with IndexServer(tmp_path / "index", path_prefix=f"/{TOKEN}") as server:
        server.add_wheel("attrs", "24.2.0")
        yield server


def run(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["-w", str(root), *args])
    return result.exit_code, result.stdout + result.stderr


def test_redact_url_masks_path_tokens_and_credentials() -> None:
    assert redact_url(f"https://bob:pw@host/{TOKEN}/simple") == "https://host/****/simple"
    assert redact_url("https://host/simple") == "https://host/simple"
    assert redact_url("https://host/files/attrs-24.2.0-py3-none-any.whl") == (
        "https://host/files/attrs-24.2.0-py3-none-any.whl"
    )
    assert redact_url("https://host/a/3f9c2b7e8d1a4f6b9c0e2d5a7b8c9d0e/simple") == (
        "https://host/a/****/simple"
    )


def test_a_path_token_is_in_no_output_and_no_cache_file_name(
    make_workspace: MakeWorkspace, token_index: IndexServer, tmp_path: Path
) -> None:
    assert TOKEN in token_index.url
    root = make_workspace({"services/api": pyproject("api", ["attrs"])},
                          manifest=index_manifest(token_index))
    code, out = run(root, "check")  # which rightly calls the token in workspace.yaml an error
    assert code == 1
    assert "indexes[0].url: a PyPI API token is stored in the file (pypi-... (65 characters))" \
        in out
    outputs = [out]
    for args in (["lock"], ["sync", "api"], ["show", "api"], ["cache", "info"]):
        code, out = run(root, *args)
        assert code == 0, out
        outputs.append(out)
    token_index.fail_next(100)  # a persistent 503: the error names the index, masked
    code, out = run(root, "lock", "--refresh")
    assert code == 1
    assert "answered HTTP 503 for " in out, out
    outputs.append(out)
    assert "/****/simple" in "".join(outputs)
    assert TOKEN not in "".join(outputs)
    for dirpath, dirnames, filenames in os.walk(tmp_path / "cache"):
        for name in dirnames + filenames:
            assert TOKEN[:12] not in name, os.path.join(dirpath, name)


GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


@pytest.fixture
def secret_env_shop(make_workspace: MakeWorkspace, index: IndexServer) -> Path:
    tool = (f'kind = "service"\ncommand = ["python"]\n'
            f'env = {{API_TOKEN = "{GHP}", LOG_LEVEL = "info"}}\n')
    root = make_workspace({"services/api": pyproject("api", ["attrs"], tool=tool)},
                          manifest=index_manifest(index))
    code, out = run(root, "lock")
    assert code == 0, out
    return root


def test_dockerfile_refuses_a_secret_looking_env_value(
    secret_env_shop: Path, tmp_path: Path
) -> None:
    context = tmp_path / "ctx"
    code, out = run(secret_env_shop, "dockerfile", "api", "--context", str(context),
                    "--base", "python:3.11-slim")
    assert code == 1
    assert "internal error" not in out
    assert out.startswith(
        "error: cannot build api: tool.orchestrator.env.API_TOKEN holds a GitHub token "
        "(ghp_... (40 characters)), which the image would carry in every layer\n"
        "hint: pass it at run time (docker run -e, a secret manager) or as a build secret; "
        "if it is not a secret, list it under image.allow-env-secrets in workspace.yaml"
    )
    assert GHP not in out
    assert not context.exists() or not any(context.iterdir())


def test_allow_env_secrets_lets_a_listed_key_through(
    secret_env_shop: Path, tmp_path: Path
) -> None:
    manifest = secret_env_shop / "workspace.yaml"
    manifest.write_text(manifest.read_text() + "image:\n  allow-env-secrets: [API_TOKEN]\n")
    context = tmp_path / "ctx"
    _code, out = run(secret_env_shop, "dockerfile", "api", "--context", str(context),
                    "--base", "python:3.11-slim")
    # past the check: it goes on to build the member (which this index cannot serve)
    assert "tool.orchestrator.env.API_TOKEN" not in out
    assert "installing the [build-system] requirements" in out


def test_a_token_in_project_urls_is_refused_before_it_reaches_the_wheel(
    make_workspace: MakeWorkspace, index: IndexServer, tmp_path: Path
) -> None:
    text = pyproject("api", ["attrs"], tool='kind = "service"\ncommand = ["python"]\n')
    text = text.replace("dependencies = [", f'urls = {{Docs = "https://x.io/?t={GHP}"}}\n'
                        "dependencies = [", 1)
    root = make_workspace({"services/api": text}, manifest=index_manifest(index))
    assert run(root, "lock")[0] == 0
    code, out = run(root, "dockerfile", "api", "--context", str(tmp_path / "ctx"),
                    "--base", "python:3.11-slim")
    assert code == 1
    assert out.startswith("error: cannot build api: project.urls.Docs holds a GitHub token "
                          "(ghp_... (40 characters)), which the service wheel's METADATA would "
                          "carry into the image\n")
    assert GHP not in out


def test_a_path_token_never_lands_in_the_lock_and_sync_still_downloads(
    make_workspace: MakeWorkspace, token_index: IndexServer, tmp_path: Path
) -> None:
    root = make_workspace({"services/api": pyproject("api", ["attrs"])},
                          manifest=index_manifest(token_index))
    code, out = run(root, "lock")
    assert code == 0, out
    lock = (root / "services/api/pylock.toml").read_text()
    assert TOKEN not in lock
    assert "/****/" in lock  # the index and the wheel URL, masked
    code, out = run(root, "lock", "--check")
    assert code == 0, out
    # The server answers only under the token's path: the download needs the real URL,
    # which sync takes from workspace.yaml.
    code, out = run(root, "sync", "api")
    assert code == 0, out
    assert list((root / "services/api/.venv/lib").glob("python3.*/site-packages/attrs"))


def _cache_files_holding(cache: Path, secret: str) -> list[str]:
    """Every file under *cache* whose name or bytes hold *secret*, as `grep -r` finds them."""
    hits = []
    for dirpath, _dirnames, filenames in os.walk(cache):
        for name in filenames:
            path = Path(dirpath, name)
            if secret.encode() in path.read_bytes() or secret in str(path):
                hits.append(str(path.relative_to(cache)))
    return hits


def test_no_page_cache_file_holds_a_path_token_and_a_warm_lock_still_hits(
    make_workspace: MakeWorkspace, token_index: IndexServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token_index.add_wheel("attrs", "23.1.0")
    root = make_workspace({"services/api": pyproject("api", ["attrs"])},
                          manifest=index_manifest(token_index))
    code, out = run(root, "lock")
    assert code == 0, out
    cache = tmp_path / "cache"
    pages = list((cache / "http-v1").rglob("*.page"))
    listings = list((cache / "http-v1").rglob(f"*.{LISTING_KIND}"))
    assert pages and listings, list((cache / "http-v1").rglob("*"))
    assert _cache_files_holding(cache, TOKEN) == []
    assert b"*" * len(TOKEN) in b"".join(p.read_bytes() for p in pages + listings)  # masked
    # A second lock from scratch is served by the cache: no page is asked for again,
    # and the pages and listings come back with the real URLs.
    (root / "services/api/pylock.toml").unlink()
    token_index.reset()

    def parse_body(*args: object) -> None:
        raise AssertionError("the listing derived from the page was not used")

    with monkeypatch.context() as patch:
        patch.setattr("orchestrator.index.client.IndexClient._parse_body", parse_body)
        code, out = run(root, "lock")
    assert code == 0, out
    assert token_index.count() == 0, token_index.counts()
    code, out = run(root, "sync", "api")
    assert code == 0, out
    assert token_index.count(f"/{TOKEN}/files/attrs-24.2.0-py3-none-any.whl") == 1
    assert list((root / "services/api/.venv/lib").glob("python3.*/site-packages/attrs"))
    assert _cache_files_holding(cache, TOKEN) == []


def test_no_cache_file_holds_the_index_password(
    make_workspace: MakeWorkspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "Xy7-horse-battery-staple"
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path / "cache"))
    # (workspace.yaml refuses credentials in a URL; they come from the environment)
    monkeypatch.setenv("ORCHESTRATOR_INDEX_LOCAL_USERNAME", "bob")
    monkeypatch.setenv("ORCHESTRATOR_INDEX_LOCAL_PASSWORD", password)
    with IndexServer(tmp_path / "index", auth=("bob", password)) as server:
        server.add_wheel("attrs", "24.2.0")
        root = make_workspace({"services/api": pyproject("api", ["attrs"])},
                              manifest=index_manifest(server))
        code, out = run(root, "lock")
        assert code == 0, out
        code, out = run(root, "sync", "api")
        assert code == 0, out
    assert _cache_files_holding(tmp_path / "cache", password) == []


def test_page_cache_masks_url_secrets_in_bodies_and_derived_data_and_restores_them(
    tmp_path: Path,
) -> None:
    import marshal

    from orchestrator.httpcache import CachedPage, PageCache, url_secrets

    url = f"https://bob:hunter2-long@host/{TOKEN}/simple/attrs/?api_key=k3y-value-1234"
    assert b"bob" not in url_secrets(url)  # too short to look for
    assert {TOKEN.encode(), b"hunter2-long", b"k3y-value-1234"} <= set(url_secrets(url))
    body = f'{{"files": [{{"url": "https://host/{TOKEN}/files/a.whl"}}]}}'.encode()
    cache = PageCache(tmp_path)
    cache.store(CachedPage(url, 200, "application/json", body, 1.0, etag="e"))
    derived = marshal.dumps((f"https://host/{TOKEN}/files/a.whl", TOKEN, 3))
    cache.store_derived(url, "listing", "abc", derived)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert TOKEN.encode() not in data and b"hunter2-long" not in data, path
            assert b"k3y-value-1234" not in data, path
    page = cache.load(url)
    assert page is not None and page.body == body and page.url == url
    assert cache.load(url, body=False) is not None
    assert cache.load_derived(url, "listing", "abc") == derived
    # another token is another entry, never this one's body with the new token in it
    other = url.replace(TOKEN, TOKEN[:-1] + "Z")
    assert cache.load(other) is None and cache.load_derived(other, "listing", "abc") is None
    # a stored entry whose masked bytes were changed is a miss, not a wrong restore
    entry = cache.path_for(url)
    entry.write_bytes(entry.read_bytes().replace(b"*" * len(TOKEN), b"x" * len(TOKEN), 1))
    assert cache.load(url) is None
    # derived data stored in parts: each part masked alone, restored when it is read
    parts = (marshal.dumps(("1.0",)), derived, b"no secret", TOKEN.encode() * 2)
    cache.store_parts(url, "listing-parts", "abc", parts)
    raw = cache.derived_path(url, "listing-parts").read_bytes()
    assert TOKEN.encode() not in raw and raw.count(b"*" * len(TOKEN)) == 5
    loaded = cache.load_parts(url, "listing-parts", "abc")
    assert loaded is not None and [loaded.part(i) for i in range(4)] == list(parts)
    assert cache.load_parts(other, "listing-parts", "abc") is None
    stored = cache.derived_path(url, "listing-parts")
    body_at = raw.index(b"\n") + 1  # the first masked token after the header is in part 1
    stored.write_bytes(raw[:body_at] + raw[body_at:].replace(b"*" * len(TOKEN),
                                                             b"x" * len(TOKEN), 1))
    loaded = cache.load_parts(url, "listing-parts", "abc")  # sizes fit; part 1 does not
    assert loaded is not None and loaded.part(1) is None and loaded.part(2) == b"no secret"
