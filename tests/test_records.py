"""RECORD files: CSV rows that survive commas, quotes and newlines in paths."""

from __future__ import annotations

from orchestrator.records import RecordRow, format_record, parse_record, record_hash


def test_rows_with_commas_quotes_and_newlines_round_trip() -> None:
    rows = [
        ("pkg/a,b.py", "sha256=abc", "12"),
        ('pkg/say "hi".txt', "", ""),
        ("pkg/new\nline.py", "sha256=def", "3"),
        ("pkg-1.0.dist-info/RECORD", "", ""),
    ]
    text = format_record(rows)

    assert text.splitlines()[0] == '"pkg/a,b.py",sha256=abc,12'
    assert parse_record(text) == [RecordRow(*row) for row in rows]


def test_short_rows_and_blank_lines_are_read_leniently() -> None:
    text = "pkg/x.py\n\n,sha256=orphan,1\npkg/y.py,sha256=y\n"
    assert parse_record(text) == [
        RecordRow("pkg/x.py", "", ""),
        RecordRow("pkg/y.py", "sha256=y", ""),
    ]


def test_whole_rows_only_drops_a_cut_short_last_row() -> None:
    text = format_record([("a.py", "h", "1"), ("b\nc.py", "h", "2")])
    for cut in range(len(text)):
        rows = parse_record(text[:cut], whole_rows_only=True)
        assert rows == [RecordRow("a.py", "h", "1")][: len(rows)]
    assert len(parse_record(text, whole_rows_only=True)) == 2


def test_record_hash_is_unpadded_urlsafe_base64_of_sha256() -> None:
    assert record_hash(b"") == "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
