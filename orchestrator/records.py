"""RECORD files: the list of a distribution's files, their hashes and sizes.

A RECORD is CSV (the wheel spec says so), so a path holding a comma or a
quote is quoted; splitting lines on commas would cut such a path in two.
Every RECORD orchestrator reads or writes goes through the csv module here,
as pypa/installer's ``records.py`` does.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from typing import NamedTuple


class RecordRow(NamedTuple):
    """One RECORD line; *hash* (``sha256=…``) and *size* are empty for RECORD itself.

    A tuple rather than a dataclass: rows go to ``csv.writer`` as they are,
    thousands per sync, with no conversion.
    """

    path: str  # relative to the directory holding the .dist-info, ``/``-separated
    hash: str
    size: str


def record_hash(data: bytes) -> str:
    """The RECORD hash field of *data*: ``sha256=`` and the unpadded urlsafe base64 digest."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def format_record(rows: Iterable[Sequence[str]]) -> str:
    """RECORD text for *rows* (path, hash, size), one LF-terminated line each."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def parse_record(text: str, *, whole_rows_only: bool = False) -> list[RecordRow]:
    """The rows of a RECORD; rows without a path are skipped.

    *whole_rows_only* is for a file a kill may have cut short: an
    unterminated last row, or one ending inside a quoted field, is not
    returned. Otherwise the reader is as lenient as the csv module, since
    wheels are written by many tools.
    """
    if whole_rows_only:
        text = text[: text.rfind("\n") + 1]
    rows: list[RecordRow] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=whole_rows_only)
    try:
        for fields in reader:
            if fields and fields[0]:
                hash_ = fields[1] if len(fields) > 1 else ""
                rows.append(RecordRow(fields[0], hash_, fields[2] if len(fields) > 2 else ""))
    except csv.Error:
        if not whole_rows_only:
            raise
        # Strict parsing fails only on a quoted field cut short: the rows before it are whole.
    return rows
