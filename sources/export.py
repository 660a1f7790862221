"""A DynamoDB export to S3 (DYNAMODB_JSON, full export) as a page source.

Layout (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html):
``AWSDynamoDB/<ExportId>/manifest-summary.json`` (table, point in time, item count, format),
``manifest-files.json`` (one JSON object per line per data file: ``dataFileS3Key``,
``itemCount``, ``md5Checksum``) and ``data/*.json.gz``, gzipped JSON lines of
``{"Item": {...}}`` in the wire format. Each data file is a segment; a position is the
number of lines already written. The export may be a local directory or an ``s3://``
prefix, at the export's folder or above it (when only one export lies below). Data files
are found in the export's own ``data/`` folder, so a copied export reads the same.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import json
import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from router.errors import BackfillError
from sources.pages import Page

SUMMARY, FILES = "manifest-summary.json", "manifest-files.json"


class LocalExport:
    def __init__(self, root: str):
        self.root = Path(root)
        self.shown = root

    def find(self) -> list[str]:
        if not self.root.is_dir():
            raise BackfillError(f"export {self.shown}: no such directory")
        return sorted(str(path.parent.relative_to(self.root)) for path in self.root.rglob(SUMMARY))

    def open(self, folder: str, name: str) -> IO[bytes]:
        return (self.root / folder / name).open("rb")


class S3Export:
    def __init__(self, url: str, s3: Any):
        self.bucket, _, prefix = url.removeprefix("s3://").partition("/")
        self.prefix, self.s3, self.shown = prefix.strip("/"), s3, url

    def find(self) -> list[str]:
        found = []
        below = self.prefix + "/" if self.prefix else ""
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=below):
            found += [posixpath.relpath(posixpath.dirname(o["Key"]), self.prefix or ".")
                      for o in page.get("Contents", []) if posixpath.basename(o["Key"]) == SUMMARY]
        return sorted(found)

    def open(self, folder: str, name: str) -> IO[bytes]:
        key = posixpath.normpath(posixpath.join(self.prefix, folder, name)).lstrip("/")
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]


class ExportSource:
    """Every data file of one export; ``location`` is a directory or ``s3://bucket/prefix``."""

    def __init__(self, location: str, s3: Any = None, page_size: int = 1000):
        self.store = S3Export(location, s3) if location.startswith("s3://") else LocalExport(location)
        self.folder = self._folder()
        summary = json.loads(self._read(SUMMARY))
        if summary.get("outputFormat", "DYNAMODB_JSON") != "DYNAMODB_JSON":
            raise BackfillError(f"export {self.store.shown}: format {summary['outputFormat']}; "
                                "only DYNAMODB_JSON is read")
        if summary.get("exportType", "FULL_EXPORT") != "FULL_EXPORT":
            raise BackfillError(f"export {self.store.shown}: an {summary['exportType']}; "
                                "only a full export is a backfill")
        self.table = str(summary.get("tableArn", "")).rpartition("table/")[2].split("/")[0]
        self.export_time = _timestamp(summary.get("exportTime"))
        self.estimated_items: int | None = summary.get("itemCount")
        self.name = summary.get("exportArn") or f"export {self.store.shown}"
        self.files = {posixpath.basename(entry["dataFileS3Key"]): entry for entry in
                      (json.loads(line) for line in self._read(FILES).splitlines() if line.strip())}
        self.segments = tuple(self.files)
        self.page_size = page_size

    def read(self, segment: str, position: Any) -> Iterator[Page]:
        skip = (position or {}).get("line", 0)
        entry, lines, items = self.files[segment], 0, []
        with self.store.open(self.folder, posixpath.join("data", segment)) as raw:
            checked = _Md5(raw)
            for line in io.TextIOWrapper(gzip.GzipFile(fileobj=cast(IO[bytes], checked)), encoding="utf-8"):
                if not line.strip():
                    continue
                lines += 1
                if lines > skip:
                    items.append(self._item(segment, lines, line))
                if len(items) == self.page_size:
                    yield Page(segment, items, {"line": lines})
                    items = []
        self._check(segment, entry, lines, checked)
        yield Page(segment, items, None, finished=True)

    def _folder(self) -> str:
        found = self.store.find()
        if len(found) != 1:
            what = "no " + SUMMARY if not found else f"{len(found)} exports ({', '.join(found[:3])})"
            raise BackfillError(f"export {self.store.shown}: {what} below it; give the folder of one export")
        return found[0]

    def _read(self, name: str) -> str:
        with self.store.open(self.folder, name) as body:
            return body.read().decode("utf-8")

    def _item(self, segment: str, line_number: int, line: str) -> dict[str, Any]:
        try:
            item = json.loads(line)["Item"]
        except (ValueError, KeyError, TypeError):
            item = None
        if not isinstance(item, dict):
            raise BackfillError(f"export data file {segment}, line {line_number}: not a {{\"Item\": {{...}}}} object")
        return item

    def _check(self, segment: str, entry: dict[str, Any], lines: int, checked: _Md5) -> None:
        if "itemCount" in entry and entry["itemCount"] != lines:
            raise BackfillError(f"export data file {segment} holds {lines} items, and its manifest says "
                                f"{entry['itemCount']}: the file is incomplete")
        if "md5Checksum" in entry and checked.digest() != entry["md5Checksum"]:
            raise BackfillError(f"export data file {segment} does not match its MD5 checksum: the file is damaged")


class _Md5:
    """A binary stream that hashes what is read through it (the whole file is read, even on resume)."""

    def __init__(self, raw: IO[bytes]):
        self.raw, self.md5 = raw, hashlib.md5(usedforsecurity=False)

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.md5.update(data)
        return data

    def digest(self) -> str:
        return base64.b64encode(self.md5.digest()).decode("ascii")


def _timestamp(text: Any) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise BackfillError(f"the export's manifest has no valid exportTime ({text!r})") from None
