"""Build a DynamoDB export to S3 the way DynamoDB writes one (DYNAMODB_JSON, full export).

https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html:
``<prefix>/AWSDynamoDB/<ExportId>/`` holds ``_started``, ``manifest-summary.json``,
``manifest-files.json`` (a JSON object per line per data file) with their ``.md5``
files, and ``data/<name>.json.gz``: gzipped lines of ``{"Item": {...}}``.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REGION, ACCOUNT = "us-east-1", "123456789012"
EXPORT_ID = "01700000000000-a1b2c3d4"


def write_export(root: Path, table: str, items: Sequence[dict[str, Any]], *, files: int = 3,
                 export_time: dt.datetime | None = None, prefix: str = "exports", bucket: str = "backups",
                 export_id: str = EXPORT_ID) -> Path:
    """Items (wire format) spread over ``files`` data files below ``root/prefix``; returns the export's folder."""
    export_time = export_time or dt.datetime.now(dt.UTC)
    relative = f"{prefix}/AWSDynamoDB/{export_id}"
    folder = root / relative
    (folder / "data").mkdir(parents=True)
    (folder / "_started").write_bytes(b"")
    entries = []
    for number in range(files):
        name = f"{hashlib.sha1(f'{export_id}{number}'.encode()).hexdigest()[:26]}.json.gz"
        lines = "".join(json.dumps({"Item": item}, default=_base64) + "\n" for item in items[number::files])
        payload = gzip.compress(lines.encode("utf-8"), mtime=0)
        (folder / "data" / name).write_bytes(payload)
        entries.append({"itemCount": len(items[number::files]),
                        "md5Checksum": base64.b64encode(hashlib.md5(payload).digest()).decode("ascii"),
                        "etag": hashlib.md5(payload).hexdigest(), "dataFileS3Key": f"{relative}/data/{name}"})
    _write_manifest(folder / "manifest-files.json", "".join(json.dumps(e) + "\n" for e in entries))
    stamp = export_time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    summary = {
        "version": "2020-06-30", "exportArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/export/{export_id}",
        "startTime": stamp, "endTime": stamp, "tableArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}",
        "tableId": "12345a12-abcd-123a-ab12-1234abc12345", "exportTime": stamp, "s3Bucket": bucket,
        "s3Prefix": prefix, "s3SseAlgorithm": "AES256", "s3SseKmsKeyId": None,
        "manifestFilesS3Key": f"{relative}/manifest-files.json", "billedSizeBytes": 0, "itemCount": len(items),
        "outputFormat": "DYNAMODB_JSON", "exportType": "FULL_EXPORT",
    }
    _write_manifest(folder / "manifest-summary.json", json.dumps(summary))
    return folder


def _base64(value: bytes) -> str:
    """Binary values (B, BS) as the export writes them: base64 text."""
    return base64.b64encode(value).decode("ascii")


def _write_manifest(path: Path, text: str) -> None:
    path.write_text(text)
    path.with_suffix(".md5").write_text(base64.b64encode(hashlib.md5(text.encode()).digest()).decode("ascii"))


def upload(s3: Any, root: Path, bucket: str = "backups") -> None:
    """Every file below ``root`` into a (moto) S3 bucket, keyed by its path below ``root``."""
    s3.create_bucket(Bucket=bucket)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=path.relative_to(root).as_posix(), Body=path.read_bytes())
