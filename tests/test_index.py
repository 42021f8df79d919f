"""IndexClient against a real local index server (tests/support/indexserver.py)."""

from __future__ import annotations

import hashlib
import io
import json
import marshal
import struct
import threading
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator import httpcache
from orchestrator.errors import HashMismatchError, PackageIndexError
from orchestrator.httpcache import CacheControl, CachedPage, PageCache
from orchestrator.index import IndexClient, ProjectFiles, listing, remotezip, transport
from orchestrator.index import client as client_module
from orchestrator.index.listing import LISTING_KIND
from orchestrator.index.pages import parse_html_page, parse_json_page
from orchestrator.models import CoreMetadata, DistFile, IndexSpec
from tests.support.indexserver import IndexServer, ServedFile
from tests.support.wheels import build_wheel, metadata_text, sha256_of

CASES = Path("/work/shared/data/resolvelib-cases/index")
MakeClient = Callable[..., IndexClient]


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "BACKOFF", 0.01)
    monkeypatch.setenv("NETRC", "/nonexistent/netrc")  # never read the developer's


@pytest.fixture
def server(tmp_path: Path) -> Iterator[IndexServer]:
    with IndexServer(tmp_path / "files") as srv:
        yield srv


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[MakeClient]:
    clients: list[IndexClient] = []

    def make(*urls: str, **kwargs: object) -> IndexClient:
        specs = [IndexSpec(f"idx{i}" if i else "main", url) for i, url in enumerate(urls)]
        kwargs.setdefault("cache_dir", tmp_path / "cache")
        client = IndexClient(specs, **kwargs)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _by_name(files: Sequence[DistFile]) -> dict[str, DistFile]:
    return {f.filename: f for f in files}


def _wheel_path(served: ServedFile) -> str:
    return f"/files/{served.filename}"


# -- project pages ---------------------------------------------------------------


def test_json_page_carries_every_field(server: IndexServer, make_client: MakeClient) -> None:
    wheel = server.add_wheel(
        "Demo.Pkg", "1.0", requires_python=">=3.8", upload_time="2024-01-02T03:04:05Z"
    )
    server.add_wheel("demo-pkg", "2.0", yanked="broken build")
    client = make_client(server.url)

    page = client.project("demo_pkg")
    files = _by_name(page.files)

    assert page.versions == ("1.0", "2.0")
    first = files["Demo_Pkg-1.0-py3-none-any.whl"]
    assert first == DistFile(
        filename="Demo_Pkg-1.0-py3-none-any.whl",
        url=f"{server.base_url}/files/Demo_Pkg-1.0-py3-none-any.whl",
        index="main",
        sha256=wheel.sha256,
        size=len(wheel.data),
        requires_python=">=3.8",
        yanked=None,
        upload_time="2024-01-02T03:04:05Z",
        metadata_sha256=first.metadata_sha256,
        has_metadata=True,
    )
    assert first.metadata_sha256 and len(first.metadata_sha256) == 64
    assert files["demo_pkg-2.0-py3-none-any.whl"].yanked == "broken build"
    assert server.requests[0].path == "/simple/demo-pkg/"


def test_html_fallback_when_index_has_no_json(tmp_path: Path, make_client: MakeClient) -> None:
    with IndexServer(tmp_path / "files", json_api=False) as server:
        wheel = server.add_wheel("demo", "1.0", requires_python="<4,>=3.8", yanked="")
        client = make_client(server.url)
        (file,) = client.files("demo")

    assert "application/vnd.pypi.simple.v1+json" in server.requests[0].headers["accept"]
    assert file.sha256 == wheel.sha256
    assert file.requires_python == "<4,>=3.8"  # unescaped from &lt;
    assert file.yanked == ""
    assert file.has_metadata and file.metadata_sha256
    assert client.project("demo").versions == ()


def test_parse_html_page_attributes() -> None:
    body = b"""<html><head><base href="https://files.example/pkgs/"></head><body>
    <a href="a-1.0.tar.gz#sha256=ABCD" data-requires-python="&gt;=3.9" data-yanked>a-1.0.tar.gz</a>
    <a href="a-1.0-py3-none-any.whl" data-dist-info-metadata="true">x</a>
    <a href="https://u:p@other.example/a-2.0-py3-none-any.whl#md5=00"
       data-core-metadata="sha256=EF">a</a>
    </body></html>"""
    page = parse_html_page(body, "https://idx.example/simple/a/", "idx", "a")
    sdist, wheel, other = page.files
    assert (sdist.url, sdist.sha256, sdist.requires_python, sdist.yanked) == (
        "https://files.example/pkgs/a-1.0.tar.gz",
        "abcd",
        ">=3.9",
        "",
    )
    assert (wheel.has_metadata, wheel.metadata_sha256, wheel.yanked) == (True, "", None)
    assert other.url == "https://other.example/a-2.0-py3-none-any.whl"  # no credentials
    assert (other.sha256, other.metadata_sha256) == (None, "ef")


def test_parse_json_page_older_keys() -> None:
    body = json.dumps(
        {
            "meta": {"api-version": "1.0"},
            "name": "A",
            "files": [
                {
                    "filename": "a-1.0-py3-none-any.whl",
                    "url": "../../f/a-1.0-py3-none-any.whl",
                    "hashes": {},
                    "dist-info-metadata": {"sha256": "aa"},
                    "yanked": True,
                },
                {
                    "filename": "a-1.0.tar.gz",
                    "url": "/f/a-1.0.tar.gz#sha256=bb",
                    "hashes": {},
                    "core-metadata": False,
                },
            ],
        }
    ).encode()
    wheel, sdist = parse_json_page(body, "https://i.example/simple/a/", "i").files
    assert wheel.url == "https://i.example/f/a-1.0-py3-none-any.whl"
    assert (wheel.has_metadata, wheel.metadata_sha256, wheel.yanked) == (True, "aa", "")
    assert (sdist.sha256, sdist.has_metadata, sdist.yanked) == ("bb", False, None)


# -- metadata -------------------------------------------------------------------------


def test_pep658_metadata_file_is_used(server: IndexServer, make_client: MakeClient) -> None:
    wheel = server.add_wheel(
        "demo", "1.0", requires_dist=["dep>=2"], extras=["x"], requires_python=">=3.9"
    )
    client = make_client(server.url)
    (file,) = client.files("demo")

    assert client.metadata(file) == CoreMetadata("demo", "1.0", ("dep>=2",), ">=3.9", ("x",))
    assert server.count(_wheel_path(wheel) + ".metadata") == 1
    assert server.count(_wheel_path(wheel)) == 0


def test_pep658_hash_mismatch(server: IndexServer, make_client: MakeClient) -> None:
    server.add_wheel("demo", "1.0")
    client = make_client(server.url)
    (file,) = client.files("demo")
    with pytest.raises(HashMismatchError, match=r"metadata file of demo-1\.0-py3-none-any\.whl"):
        client.metadata(replace(file, metadata_sha256="0" * 64))


def _no_pep658(tmp_path: Path) -> IndexServer:
    return IndexServer(tmp_path / "files", pep658=False)


def test_ranged_read_of_small_wheel_is_one_request(tmp_path: Path, make_client: MakeClient) -> None:
    with _no_pep658(tmp_path) as server:
        wheel = server.add_wheel("demo", "1.0", requires_dist=["dep"])
        client = make_client(server.url)
        (file,) = client.files("demo")
        assert not file.has_metadata
        assert client.metadata(file).requires_dist == ("dep",)

    hits = [r for r in server.requests if r.path == _wheel_path(wheel)]
    assert [(r.headers.get("range"), r.status) for r in hits] == [("bytes=-65536", 206)]


def _wheel_with_metadata_first(directory: Path, method: int = zipfile.ZIP_DEFLATED) -> Path:
    """A wheel whose METADATA sits far before its tail, behind 200 KiB of payload."""
    path = directory / "big-1.0-py3-none-any.whl"
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("big-1.0.dist-info/METADATA", metadata_text("big", "1.0", ["dep<3"]), method)
        zf.writestr("big/payload.bin", bytes(range(256)) * 800, zipfile.ZIP_STORED)
        zf.writestr("big-1.0.dist-info/RECORD", "")
    return path


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_ranged_read_fetches_only_the_entry(
    tmp_path: Path, make_client: MakeClient, method: int
) -> None:
    with _no_pep658(tmp_path) as server:
        served = server.add_file(_wheel_with_metadata_first(tmp_path / "src", method))
        client = make_client(server.url)
        (file,) = client.files("big")
        assert client.metadata(file).requires_dist == ("dep<3",)

    hits = [r for r in server.requests if r.path == _wheel_path(served)]
    assert [r.status for r in hits] == [206, 206]
    assert hits[0].headers["range"] == "bytes=-65536"
    start, end = hits[1].headers["range"].removeprefix("bytes=").split("-")
    assert int(start) == 0 and int(end) < 1024  # just the local header and entry
    assert len(served.data) > 200_000


def test_ranged_read_when_server_ignores_range(tmp_path: Path, make_client: MakeClient) -> None:
    with IndexServer(tmp_path / "files", pep658=False, ranges=False) as server:
        served = server.add_file(_wheel_with_metadata_first(tmp_path / "src"))
        client = make_client(server.url)
        (file,) = client.files("big")
        assert client.metadata(file).name == "big"
    assert [r.status for r in server.requests if r.path == _wheel_path(served)] == [200]


def _zip64ify(data: bytes) -> bytes:
    """Rewrite a small zip as zip64: 0xFFFFFFFF sizes/offsets, zip64 extras and EOCD."""
    eocd = data.rfind(b"PK\x05\x06")
    _sig, _d, _cd, _n, count, _size, cd_offset, _c = struct.unpack_from("<4s4H2LH", data, eocd)
    out, pos = bytearray(), cd_offset
    for _ in range(count):
        fields = list(struct.unpack_from("<4s6H3L5H2L", data, pos))
        name_len, extra_len, comment_len = fields[10], fields[11], fields[12]
        name = data[pos + 46 : pos + 46 + name_len]
        extra = struct.pack("<HH3Q", 1, 24, fields[9], fields[8], fields[16])
        fields[8] = fields[9] = fields[16] = 0xFFFFFFFF
        fields[11], fields[12] = len(extra), 0
        out += struct.pack("<4s6H3L5H2L", *fields) + name + extra
        pos += 46 + name_len + extra_len + comment_len
    new_cd_offset = cd_offset
    zip64_eocd_offset = new_cd_offset + len(out)
    record = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(out), new_cd_offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, zip64_eocd_offset, 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[:cd_offset] + bytes(out) + record + locator + end


def test_ranged_read_of_zip64_wheel(tmp_path: Path, make_client: MakeClient) -> None:
    source = _wheel_with_metadata_first(tmp_path / "src")
    source.write_bytes(_zip64ify(source.read_bytes()))
    with _no_pep658(tmp_path) as server:
        served = server.add_file(source)
        client = make_client(server.url)
        (file,) = client.files("big")
        assert client.metadata(file).requires_dist == ("dep<3",)
    assert [r.status for r in server.requests if r.path == _wheel_path(served)] == [206, 206]


def test_metadata_cache_makes_a_second_run_silent(
    server: IndexServer, make_client: MakeClient, tmp_path: Path
) -> None:
    server.add_wheel("demo", "1.0", requires_dist=["dep"])
    first = make_client(server.url)
    (file,) = first.files("demo")
    first.metadata(file)
    server.reset()

    second = make_client(server.url)
    assert second.metadata(file).requires_dist == ("dep",)
    assert second.files("demo") == (file,)  # the page is still fresh
    assert server.count() == 0
    assert list((tmp_path / "cache" / "metadata-v1").rglob(f"sha256-{file.sha256}.json"))


def test_corrupt_metadata_cache_entry_is_refetched(
    server: IndexServer, make_client: MakeClient, tmp_path: Path
) -> None:
    served = server.add_wheel("demo", "1.0", requires_dist=["dep"])
    first = make_client(server.url)
    (file,) = first.files("demo")
    first.metadata(file)
    for entry in (tmp_path / "cache" / "metadata-v1").rglob("*.json"):
        entry.write_text("{not json")
    server.reset()

    assert make_client(server.url).metadata(file).requires_dist == ("dep",)
    assert server.count(_wheel_path(served) + ".metadata") == 1


def test_sdist_metadata_needs_a_builder(server: IndexServer, make_client: MakeClient) -> None:
    server.add_sdist("demo", "1.0")
    (file,) = make_client(server.url).files("demo")
    with pytest.raises(PackageIndexError) as caught:
        make_client(server.url).metadata(file)
    assert str(caught.value) == (
        f"cannot read the metadata of demo-1.0.tar.gz from index 'main' ({server.url}): "
        "it is a source distribution, and building sdists is not enabled here\n"
        "hint: pin a version that ships a wheel, or enable sdist builds"
    )
    assert caught.value.index == "main"

    seen: list[Path] = []

    def builder(path: Path) -> CoreMetadata:
        seen.append(path)
        return CoreMetadata("demo", "1.0", ("built",))

    client = make_client(server.url, sdist_metadata=builder)
    assert client.metadata(file).requires_dist == ("built",)
    assert seen[0].name == "demo-1.0.tar.gz" and sha256_of(seen[0]) == file.sha256


# -- page cache ---------------------------------------------------------------------


def test_page_ttl_and_refresh(server: IndexServer, make_client: MakeClient) -> None:
    server.add_wheel("demo", "1.0")
    make_client(server.url).files("demo")
    make_client(server.url).files("demo")
    assert server.count("/simple/demo/") == 1  # fresh within the TTL

    server.add_wheel("demo", "2.0")
    assert len(make_client(server.url, page_ttl=0).files("demo")) == 2
    assert len(make_client(server.url, refresh=True).files("demo")) == 2
    assert server.count("/simple/demo/") == 3


def test_revalidation_with_validators(tmp_path: Path, make_client: MakeClient) -> None:
    with IndexServer(tmp_path / "files", validators=True) as server:
        server.add_wheel("demo", "1.0")
        make_client(server.url).files("demo")
        files = make_client(server.url, page_ttl=0).files("demo")
    assert len(files) == 1
    first, second = (r for r in server.requests if r.path == "/simple/demo/")
    assert "if-none-match" not in first.headers
    assert second.headers["if-none-match"] == first_etag(server) and second.status == 304


def first_etag(server: IndexServer) -> str:
    cached = [r for r in server.requests if r.status == 304]
    return cached[0].headers["if-none-match"]


def test_server_max_age_beats_ttl(tmp_path: Path, make_client: MakeClient) -> None:
    with IndexServer(tmp_path / "files", cache_control="max-age=0") as server:
        server.add_wheel("demo", "1.0")
        make_client(server.url).files("demo")
        make_client(server.url, page_ttl=3600).files("demo")
    assert server.count("/simple/demo/") == 2


def test_offline_serves_the_cache_and_names_a_miss(
    server: IndexServer, make_client: MakeClient
) -> None:
    server.add_wheel("demo", "1.0")
    online = make_client(server.url)
    online.metadata(online.files("demo")[0])
    server.reset()

    offline = make_client(server.url, offline=True)
    assert offline.metadata(offline.files("demo")[0]).name == "demo"
    with pytest.raises(PackageIndexError) as caught:
        offline.files("other")
    assert server.count() == 0
    assert str(caught.value) == (
        f"package 'other' is not in the cache for index 'main' ({server.url}), "
        "and offline mode forbids network access\n"
        "hint: run once without --offline to fill the cache"
    )
    assert (caught.value.package, caught.value.index) == ("other", "main")


def test_page_cache_ignores_corrupt_entries(tmp_path: Path) -> None:
    cache = PageCache(tmp_path)
    path = cache.path_for("https://x/simple/a/")
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"url": "https://x/simple/a/", "size": 99}\nshort')
    assert cache.load("https://x/simple/a/") is None
    path.write_bytes(b"\xff garbage")
    assert cache.load("https://x/simple/a/") is None


def _listings(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "http-v1").rglob(f"*.{LISTING_KIND}"))


def _forbid_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> None:
        raise AssertionError("the page was parsed again")

    monkeypatch.setattr(client_module, "json_rows", fail)


def test_a_warm_run_reads_the_derived_listing_and_makes_no_client(
    server: IndexServer, make_client: MakeClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add_wheel("demo", "1.0")
    server.add_wheel("demo", "2.0", yanked="bad")
    server.add_sdist("demo", "2.0")
    first = make_client(server.url).project("demo")
    assert len(_listings(tmp_path / "cache")) == 1

    _forbid_parsing(monkeypatch)

    def no_client(max_workers: int) -> None:
        raise AssertionError("an HTTP client was built")

    monkeypatch.setattr(client_module, "make_http_client", no_client)
    second = make_client(server.url).project("demo")
    assert second.files == first.files and list(second.files) == list(first.files)
    assert second.versions == first.versions == ("1.0", "2.0")
    assert {f.filename: f.yanked for f in second.files}["demo-2.0-py3-none-any.whl"] == "bad"


def test_derived_listing_follows_the_page(
    server: IndexServer, make_client: MakeClient, tmp_path: Path
) -> None:
    server.add_wheel("demo", "1.0")
    make_client(server.url).files("demo")
    server.add_wheel("demo", "2.0")
    files = make_client(server.url, page_ttl=0).files("demo")  # a new page body
    assert sorted(f.filename for f in files) == [
        "demo-1.0-py3-none-any.whl",
        "demo-2.0-py3-none-any.whl",
    ]
    assert len(_listings(tmp_path / "cache")) == 1  # replaced, not added


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-10],  # truncated
        lambda data: data[:-1] + bytes([data[-1] ^ 1]),  # a flipped bit
        lambda data: b"garbage",
        lambda data: data.replace(LISTING_KIND.encode(), b"files-v0"),  # another format
    ],
)
def test_damaged_derived_listing_is_ignored_and_rewritten(
    server: IndexServer,
    make_client: MakeClient,
    tmp_path: Path,
    damage: Callable[[bytes], bytes],
) -> None:
    server.add_wheel("demo", "1.0")
    expected = list(make_client(server.url).files("demo"))
    (listing,) = _listings(tmp_path / "cache")
    good = listing.read_bytes()
    listing.write_bytes(damage(good))

    assert list(make_client(server.url).files("demo")) == expected
    assert listing.read_bytes() == good


def test_derived_listing_with_valid_checksum_but_wrong_shape_is_ignored(tmp_path: Path) -> None:
    cache = PageCache(tmp_path)
    url, digest = "https://x/simple/a/", "ab" * 32

    def parts(*stored: bytes) -> tuple[ProjectFiles, tuple[str, ...]] | None:
        cache.store_parts(url, LISTING_KIND, digest, stored)
        loaded = cache.load_parts(url, LISTING_KIND, digest)
        assert loaded is not None and len(loaded) == len(stored)
        return listing.decode_listing(loaded, "main")

    assert parts(b"\x00not marshal") is None
    assert cache.load_parts(url, LISTING_KIND, "cd" * 32) is None  # another page body
    assert parts(marshal.dumps(((), b""))) is None
    assert parts(marshal.dumps((("1.0",), 5))) is None
    assert parts(marshal.dumps(((), ("1.0",)))) is None  # names a group it does not hold
    assert parts(marshal.dumps(((), ("1.0", "1.0"))), b"", b"") is None
    found = parts(marshal.dumps(((), ("1.0",))), b"not marshal")
    assert found is not None  # a group is checked when it is read: then it is damaged
    with pytest.raises(PackageIndexError, match="a cached index listing is damaged"):
        found[0].files_of("1.0")


def test_a_warm_run_reads_only_the_groups_it_looks_at(
    server: IndexServer, make_client: MakeClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version in ("1.0", "1.1", "2.0"):
        server.add_wheel("demo", version)
    first = make_client(server.url).project("demo")
    read: list[int] = []
    part = httpcache.DerivedParts.part

    def recording(self: httpcache.DerivedParts, number: int) -> bytes | None:
        read.append(number)
        return part(self, number)

    monkeypatch.setattr(httpcache.DerivedParts, "part", recording)
    _forbid_parsing(monkeypatch)
    files = make_client(server.url).project("demo").files
    assert isinstance(files, ProjectFiles) and read == [0]  # the versions and group names
    assert list(files.version_texts()) == ["2.0", "1.1", "1.0"]
    assert [f.filename for f in files.files_of("1.1")] == ["demo-1.1-py3-none-any.whl"]
    assert read == [0, 2]
    assert list(files) == list(first.files)


def test_a_group_damaged_on_disk_is_a_miss_found_when_it_is_read(
    server: IndexServer, make_client: MakeClient, tmp_path: Path
) -> None:
    for version in ("1.0", "2.0"):
        server.add_wheel("demo", version)
    expected = list(make_client(server.url).files("demo"))
    (path,) = _listings(tmp_path / "cache")
    good = path.read_bytes()
    at = good.index(b"demo-1.0-py3")  # in the last group's part
    path.write_bytes(good[:at] + b"X" + good[at + 1:])
    files = make_client(server.url).project("demo").files
    assert isinstance(files, ProjectFiles)
    assert [f.filename for f in files.files_of("2.0")] == ["demo-2.0-py3-none-any.whl"]
    assert list(files) == expected  # 1.0's part fails its CRC: the page is parsed again
    assert path.read_bytes() == good  # and the listing written anew



def test_a_damaged_group_behind_a_valid_checksum_names_what_to_delete() -> None:
    files = ProjectFiles.from_encoded("main", (("1.0", b"\x00not marshal"),))
    assert files is not None and list(files.version_texts()) == ["1.0"]
    with pytest.raises(PackageIndexError) as caught:
        files.files_of("1.0")
    assert str(caught.value) == (
        "a cached index listing is damaged\n"
        "hint: delete the http-v1 directory in the orchestrator cache and retry"
    )


def test_page_cache_reads_only_the_header_when_asked(tmp_path: Path) -> None:
    cache = PageCache(tmp_path)
    page = CachedPage("https://x/simple/a/", 200, "application/json", b"{}", fetched_at=1.0)
    cache.store(page)
    head = cache.load(page.url, body=False)
    assert head is not None and head.body is None
    assert head.digest() == hashlib.sha256(b"{}").hexdigest()
    with pytest.raises(ValueError):
        cache.store(head)
    cache.path_for(page.url).write_bytes(cache.path_for(page.url).read_bytes() + b"more")
    assert cache.load(page.url, body=False) is None  # the size no longer matches


def test_project_files_group_by_version_newest_first() -> None:
    rows = [
        ("a-1.0-py3-none-any.whl", "https://x/1", None, None, None, None, None, None, False),
        ("a-2.0.tar.gz", "https://x/2", "ab", 3, ">=3.8", "", None, None, True),
        ("a-1.0.0.tar.gz", "https://x/3", None, None, None, None, None, None, False),
        ("README", "https://x/4", None, None, None, None, None, None, False),
    ]
    files = ProjectFiles.from_rows("main", rows)
    assert list(files.version_texts()) == ["2.0", "1.0"]  # newest first, valid versions only
    assert [f.url for f in files.files_of("1.0")] == ["https://x/1", "https://x/3"]
    assert [f.url for f in files.files_of("")] == ["https://x/4"]
    assert files.files_of("2.0") == (
        DistFile("a-2.0.tar.gz", "https://x/2", "main", "ab", 3, ">=3.8", "", None, None, True),
    )
    again = ProjectFiles.from_encoded("main", files.encoded_groups())
    assert again is not None and again == files and len(again) == 4
    assert again[-1].filename == "README"


def test_cache_control_parse() -> None:
    assert CacheControl.parse("public, max-age=600") == CacheControl(600.0, False, False)
    assert CacheControl.parse("no-cache, no-store") == CacheControl(None, True, True)
    assert CacheControl.parse(None) == CacheControl()


# -- several indexes ------------------------------------------------------------------


def test_first_index_with_the_project_wins(tmp_path: Path, make_client: MakeClient) -> None:
    with IndexServer(tmp_path / "a") as first, IndexServer(tmp_path / "b") as second:
        first.add_wheel("shared", "1.0")
        second.add_wheel("shared", "99.0")  # a squatter on a later index
        second.add_wheel("only-b", "1.0")
        client = make_client(first.url, second.url)

        assert [f.filename for f in client.files("shared")] == ["shared-1.0-py3-none-any.whl"]
        assert [f.index for f in client.files("only-b")] == ["idx1"]
        assert second.count("/simple/shared/") == 0
        assert first.count("/simple/only-b/") == 1


def test_sources_pin_a_project_to_an_index(tmp_path: Path, make_client: MakeClient) -> None:
    with IndexServer(tmp_path / "a") as first, IndexServer(tmp_path / "b") as second:
        first.add_wheel("shared", "1.0")
        second.add_wheel("shared", "2.0")
        client = make_client(first.url, second.url, sources={"Shared": "idx1"})
        assert [f.index for f in client.files("shared")] == ["idx1"]
        assert first.count() == 0

        wrong = make_client(first.url, sources={"shared": "nope"})
        not_configured = "pinned to index 'nope', which is not configured"
        with pytest.raises(PackageIndexError, match=not_configured):
            wrong.files("shared")


def test_not_found_on_any_index_names_them(tmp_path: Path, make_client: MakeClient) -> None:
    with (
        IndexServer(tmp_path / "a") as first,
        IndexServer(tmp_path / "b") as second,
        pytest.raises(PackageIndexError) as caught,
    ):
        make_client(first.url, second.url).files("No_Such")
    assert str(caught.value) == (
        f"package 'no-such' was not found on any configured index: 'main' ({first.url}), "
        f"'idx1' ({second.url})\n"
        "hint: check the package name for typos; if it lives on another index, "
        "add that index to `indexes:` in workspace.yaml"
    )
    assert (caught.value.package, caught.value.index) == ("no-such", None)


# -- HTTP behaviour -----------------------------------------------------------------------


def test_401_message_names_the_index_and_hides_the_password(
    tmp_path: Path, make_client: MakeClient
) -> None:
    with IndexServer(tmp_path / "files", auth=("alice", "s3cret")) as server:
        server.add_wheel("demo", "1.0")
        url = server.url.replace("http://", "http://alice:wrong-pass@")
        with pytest.raises(PackageIndexError) as caught:
            make_client(url).files("demo")
    message = str(caught.value)
    assert "wrong-pass" not in message and "alice" not in message
    assert message == (
        f"index 'main' ({server.url}) rejected the credentials (HTTP 401) for "
        f"{server.url}/demo/\n"
        "hint: set ORCHESTRATOR_INDEX_MAIN_USERNAME and ORCHESTRATOR_INDEX_MAIN_PASSWORD, "
        "or add the host to ~/.netrc"
    )


def test_credentials_from_url_netrc_and_env(
    tmp_path: Path, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with IndexServer(tmp_path / "files", auth=("alice", "s3cret")) as server:
        server.add_wheel("demo", "1.0")
        in_url = server.url.replace("http://", "http://alice:s3cret@")
        assert make_client(in_url, cache_dir=tmp_path / "c1").files("demo")

        netrc_file = tmp_path / "netrc"
        netrc_file.write_text("machine 127.0.0.1 login alice password s3cret\n")
        netrc_file.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc_file))
        assert make_client(server.url, cache_dir=tmp_path / "c2").files("demo")

        monkeypatch.setenv("NETRC", "/nonexistent")
        monkeypatch.setenv("ORCHESTRATOR_INDEX_MAIN_USERNAME", "alice")
        monkeypatch.setenv("ORCHESTRATOR_INDEX_MAIN_PASSWORD", "s3cret")
        files = make_client(server.url, cache_dir=tmp_path / "c3").files("demo")
    assert all("s3cret" not in f.url for f in files)


def test_credentials_are_not_sent_to_a_file_host(
    tmp_path: Path, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_INDEX_MAIN_USERNAME", "alice")
    monkeypatch.setenv("ORCHESTRATOR_INDEX_MAIN_PASSWORD", "s3cret")
    with (
        IndexServer(tmp_path / "files-host", pep658=False) as files_host,
        IndexServer(
            tmp_path / "index", auth=("alice", "s3cret"), file_base_url=files_host.base_url
        ) as index,
    ):
        served = index.add_wheel("demo", "1.0")
        assert served.path is not None
        files_host.add_file(served.path)
        client = make_client(index.url)
        (file,) = client.files("demo")
        client.metadata(file)
        client.download(file, tmp_path / "out.whl")

    assert all(r.headers.get("authorization") for r in index.requests)
    assert files_host.count() >= 2
    assert not any("authorization" in r.headers for r in files_host.requests)


def test_retries_after_503(server: IndexServer, make_client: MakeClient) -> None:
    server.add_wheel("demo", "1.0")
    server.fail_next(2)
    assert make_client(server.url).files("demo")
    assert [r.status for r in server.requests] == [503, 503, 200]


def test_persistent_503_message(server: IndexServer, make_client: MakeClient) -> None:
    server.fail_next(10)
    with pytest.raises(PackageIndexError) as caught:
        make_client(server.url).files("demo")
    assert server.count() == transport.RETRIES + 1
    assert str(caught.value).startswith(
        f"index 'main' ({server.url}) answered HTTP 503 for {server.url}/demo/\n"
    )


def test_unreachable_index(tmp_path: Path, make_client: MakeClient) -> None:
    with IndexServer(tmp_path / "files") as server:
        url = server.url
    with pytest.raises(PackageIndexError) as caught:
        make_client(url.replace("http://", "http://bob:hunter2@")).files("demo")
    message = str(caught.value)
    assert message.startswith(
        f"cannot reach index 'main' ({url}) at {url}/demo/ after 4 attempts over "
    )
    assert " s (ConnectError" in message  # how long it waited, then why
    assert "hunter2" not in message and "bob" not in message


def test_concurrent_prefetch_never_duplicates(tmp_path: Path, make_client: MakeClient) -> None:
    with IndexServer(tmp_path / "files", pep658=False, latency=0.02) as server:
        for version in range(8):
            server.add_wheel("demo", f"{version}.0")
        server.add_wheel("other", "1.0")
        client = make_client(server.url)
        client.prefetch_projects(["demo", "other", "Demo"])
        files = client.files("demo")
        client.prefetch_metadata(files)

        results: list[CoreMetadata] = []

        def read_all() -> None:
            results.extend(client.metadata(f) for f in files)
            client.files("other")

        threads = [threading.Thread(target=read_all) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert len(results) == 6 * 8
    counts = server.counts()
    assert counts["/simple/demo/"] == counts["/simple/other/"] == 1
    assert all(counts[f"/files/{f.filename}"] == 1 for f in files)


def test_prefetch_failure_is_raised_to_the_waiter_and_retried(
    server: IndexServer, make_client: MakeClient
) -> None:
    server.add_wheel("late", "1.0")
    server.fail_next(transport.RETRIES + 1)
    client = make_client(server.url)
    client.prefetch_projects(["late"])
    with pytest.raises(PackageIndexError, match="answered HTTP 503"):
        client.files("late")
    assert client.files("late")


# -- downloads ----------------------------------------------------------------------------


def test_download_to_path_and_stream(
    server: IndexServer, make_client: MakeClient, tmp_path: Path
) -> None:
    served = server.add_wheel("demo", "1.0")
    client = make_client(server.url)
    (file,) = client.files("demo")

    client.download(file, tmp_path / "dl" / file.filename)
    assert (tmp_path / "dl" / file.filename).read_bytes() == served.data
    buffer = io.BytesIO()
    client.download(file, buffer)
    assert buffer.getvalue() == served.data


def test_download_restarts_after_a_dropped_connection(
    server: IndexServer, make_client: MakeClient, tmp_path: Path
) -> None:
    served = server.add_wheel("demo", "1.0", files={"demo/blob.bin": bytes(range(256)) * 64})
    client = make_client(server.url)
    (file,) = client.files("demo")

    server.interrupt_next(1)
    client.download(file, tmp_path / "a.whl")
    assert (tmp_path / "a.whl").read_bytes() == served.data

    server.interrupt_next(1)
    buffer = io.BytesIO(b"prefix:")
    buffer.seek(0, io.SEEK_END)
    client.download(file, buffer)
    assert buffer.getvalue() == b"prefix:" + served.data
    assert server.count(_wheel_path(served)) == 4


def test_close_releases_waiters_of_cancelled_prefetches(
    tmp_path: Path, make_client: MakeClient
) -> None:
    with IndexServer(tmp_path / "files", latency=0.05) as server:
        client = make_client(server.url, max_workers=1)
        client.prefetch_projects([f"p{i}" for i in range(5)])
        errors: list[Exception] = []

        def wait_for_last() -> None:
            try:
                client.files("p4")
            except PackageIndexError as exc:
                errors.append(exc)

        waiter = threading.Thread(target=wait_for_last)
        waiter.start()
        client.close()
        waiter.join(timeout=10)
    assert [str(e) for e in errors] == ["the index client was closed before it fetched p4"]


def test_download_hash_mismatch(
    server: IndexServer, make_client: MakeClient, tmp_path: Path
) -> None:
    served = server.add_wheel("demo", "1.0")
    client = make_client(server.url)
    (file,) = client.files("demo")
    dest = tmp_path / "dl" / file.filename

    with pytest.raises(HashMismatchError) as caught:
        client.download(replace(file, sha256="0" * 64), dest)
    assert str(caught.value) == (
        f"downloaded demo-1.0-py3-none-any.whl from index 'main' ({server.url}) has sha256 "
        f"{served.sha256}, but the index lists {'0' * 64}\n"
        "hint: the file was corrupted in transit or changed on the index; retry, "
        "and report it to the index maintainers if it persists"
    )
    assert (caught.value.expected, caught.value.actual) == ("0" * 64, served.sha256)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


# -- the resolver corpus ---------------------------------------------------------------------


def test_case_index_is_served_as_metadata_only_wheels(
    server: IndexServer, make_client: MakeClient
) -> None:
    assert server.load_case_index(CASES / "backjump-test-1.json") == 12
    client = make_client(server.url)
    files = client.files("pandas")
    assert sorted(f.filename for f in files) == [
        "pandas-1.3.5-py3-none-any.whl",
        "pandas-1.4.0-py3-none-any.whl",
    ]
    meta = client.metadata(_by_name(files)["pandas-1.4.0-py3-none-any.whl"])
    assert meta == CoreMetadata("pandas", "1.4.0", ("python-dateutil (>=2.8.1)",))


def test_case_index_extras(server: IndexServer, make_client: MakeClient) -> None:
    server.load_case_index(CASES / "same-package.json")
    client = make_client(server.url)
    (file, *_rest) = [f for f in client.files("package-a") if "1.0.0" in f.filename]
    meta = client.metadata(file)
    assert meta.provides_extra == ("x", "y", "z")
    assert meta.requires_dist[0] == "package-x==1.0.0; extra == 'x'"


def test_build_wheel_helper_wheels_read_by_range(tmp_path: Path) -> None:
    # The ranged reader and zipfile agree on a wheel built by the shared helper.
    path = build_wheel(tmp_path, "agree", "3.1", requires_dist=["a", "b; extra == 'c'"])
    assert b"Requires-Dist: a" in remotezip.metadata_from_zip(path, path.name)


def test_json_rows_reads_every_entry_shape_as_the_checked_way_does() -> None:
    from orchestrator.index import pages

    base = {"filename": "a-1.0-py3-none-any.whl", "url": "https://f.example/a-1.0-py3-none-any.whl",
            "hashes": {"sha256": "ab" * 32}, "requires-python": ">=3.8", "size": 10,
            "upload-time": "2024-01-02T03:04:05Z", "yanked": False, "core-metadata": True}
    variants: list[dict[str, object]] = [
        base, {**base, "core-metadata": None, "dist-info-metadata": True},
        {**base, "core-metadata": {"sha256": "CD" * 32}}, {"filename": "a-1.0.tar.gz",
                                                           "url": "https://f.example/a.tgz"},
        {**base, "yanked": "broken"}, {**base, "yanked": True}, {**base, "size": True},
        {**base, "hashes": {}}, {**base, "hashes": None}, {**base, "hashes": []},
        {**base, "requires-python": ""}, {**base, "upload-time": None},
        {**base, "url": "../../f/a-1.0-py3-none-any.whl"},
        {**base, "url": "https://f.example/a-1.0-py3-none-any.whl#sha256=" + "EF" * 32},
        {**base, "url": "https://user:pw@f.example/a-1.0-py3-none-any.whl"},
        {**base, "url": "http://f.example/a-1.0-py3-none-any.whl"},
    ]
    page_url = "https://i.example/simple/a/"
    for i, entry in enumerate(variants):
        body = json.dumps({"meta": {"api-version": "1.1"}, "name": "a", "files": [entry]})
        _name, rows, _versions = pages.json_rows(body.encode(), page_url)
        assert rows == [pages._checked_row(entry, i, page_url)], entry
    for bad in ({**base, "requires-python": 3}, {**base, "hashes": {"sha256": 1}},
                {**base, "url": None}, "a-1.0.tar.gz"):
        body = json.dumps({"name": "a", "files": [base, bad]})
        with pytest.raises(pages.PageFormatError, match=r"files\[1\]"):
            pages.json_rows(body.encode(), page_url)


def test_page_is_fresh_says_whether_a_lookup_needs_the_index(
        tmp_path: Path, server: IndexServer, make_client: MakeClient) -> None:
    server.add_wheel("demo", "1.0")
    with IndexServer(tmp_path / "other") as second:
        second.add_wheel("extra", "1.0")
        client = make_client(server.url, second.url)
        assert not client.page_is_fresh("demo")  # nothing cached yet
        client.files("demo")
        client.files("Extra")  # absent from the first index (a cached 404), found on the second
        assert client.page_is_fresh("demo") and client.page_is_fresh("extra")
        assert not make_client(server.url, second.url, refresh=True).page_is_fresh("demo")
        assert not make_client(server.url, second.url, page_ttl=0).page_is_fresh("extra")
        assert make_client(server.url, offline=True).page_is_fresh("never-seen")
        requests = server.count() + second.count()
        assert make_client(server.url, second.url).page_is_fresh("demo")
        assert server.count() + second.count() == requests  # it never asks the index


def test_a_listing_with_a_long_header_and_many_parts_loads(tmp_path: Path) -> None:
    cache = PageCache(tmp_path)
    url, digest = "https://x/simple/many/", "ab" * 32
    parts = [str(i).encode() * (i % 7) for i in range(6000)]  # a header well over 64 KiB
    cache.store_parts(url, LISTING_KIND, digest, parts)
    assert cache.derived_path(url, LISTING_KIND).read_bytes().index(b"\n") > 64 * 1024
    loaded = cache.load_parts(url, LISTING_KIND, digest)
    assert loaded is not None and len(loaded) == 6000
    assert [loaded.part(i) for i in (0, 1, 5999)] == [parts[0], parts[1], parts[5999]]
    assert loaded.part(6000) is None and loaded.part(-1) is None


def test_storing_a_listing_removes_the_earlier_formats_beside_the_page(
    server: IndexServer, make_client: MakeClient, tmp_path: Path
) -> None:
    server.add_wheel("demo", "1.0")
    cache = PageCache(tmp_path / "cache")
    old = cache.derived_path(f"{server.url}/demo/", listing.OLD_LISTING_KINDS[0])
    old.parent.mkdir(parents=True)
    old.write_bytes(b"an earlier version's listing")
    make_client(server.url).files("demo")
    assert not old.exists() and len(_listings(tmp_path / "cache")) == 1


def test_connect_makes_the_http_client_once_for_every_request(
    server: IndexServer, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add_wheel("demo", "1.0")
    made: list[int] = []
    make = transport.make_http_client

    def counting(max_workers: int) -> object:
        made.append(max_workers)
        return make(max_workers)

    monkeypatch.setattr(client_module, "make_http_client", counting)
    client = make_client(server.url)
    client.connect()
    client.connect()
    assert len(made) == 1
    assert [f.filename for f in client.files("demo")] == ["demo-1.0-py3-none-any.whl"]
    assert len(made) == 1
