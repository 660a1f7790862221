"""Masked columns (issue 16): values hashed or dropped in the transform, before anything stores or logs them.

A masked column's value is replaced by a hex digest of its text (``hmac_sha256`` with the sink's key,
or ``sha256``) or by NULL (``redact``). The same masking applies to a record's images before the record
is dead-lettered or logged, so the unmasked value reaches neither; such a record carries the list of
masked attributes under ``MASKED``, so that a redrive reads those values as they are instead of hashing
the hashes. The HMAC key is read once per container (a new secret, for a rotation, needs a new container).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from router import attrs
from router.errors import ConfigError, RecordError
from router.model import Column, MaskKey
from router.modes import Mask
from router.records import ChangeRecord

MASKED = "cdcRouterMasked"  # key of a stored record: the attribute paths whose values are already masked
_IMAGES = ("Keys", "NewImage", "OldImage")
_keys: dict[MaskKey, bytes] = {}


SecretReader = Callable[[str], str]
"""A Secrets Manager secret's text by name; the entry point hands it down (the core calls no AWS API)."""


def read_key(source: MaskKey, read_secret: SecretReader | None) -> bytes:
    """The HMAC key, read on first use and kept for the container's life."""
    key = _keys.get(source)
    if key is None:
        key = _keys[source] = _fetch(source, read_secret)
    return key


def _fetch(source: MaskKey, read_secret: SecretReader | None) -> bytes:
    if source.value is not None:
        return source.value.encode("utf-8")
    assert source.secret is not None
    if read_secret is None:
        raise ConfigError([f"cannot read the mask key from secret {source.secret!r}: no way to read secrets here"])
    try:
        text = read_secret(source.secret)
    except Exception as exc:  # botocore errors, a binary secret: the message names the secret, never a value
        raise ConfigError([f"cannot read the mask key from secret {source.secret!r}: {type(exc).__name__}"]) from None
    return _secret_key(text).encode("utf-8")


def _secret_key(text: str) -> str:
    """A plain-text secret is the key; a JSON object holds it under ``key`` (the console's key/value form)."""
    try:
        document = json.loads(text)
    except ValueError:
        return text
    return str(document["key"]) if isinstance(document, dict) and "key" in document else text


def mask_value(mask: Mask, value: Any, key: bytes | None) -> str | None:
    """The masked form of a converted value: a hex digest of its text, or None."""
    if value is None or mask == Mask.REDACT:
        return None
    text = (value if isinstance(value, str) else attrs.dumps_exact(value)).encode("utf-8")
    if mask == Mask.SHA256:
        return hashlib.sha256(text).hexdigest()
    assert key is not None, "an hmac_sha256 column's route has a mask key (checked at config load)"
    return hmac.new(key, text, hashlib.sha256).hexdigest()


Masks = Iterable[tuple[Column, bytes | None]]
"""Masked columns, each with the HMAC key of its route's sink (None but for ``hmac_sha256``)."""


def masked_record(record: ChangeRecord, masks: Masks) -> ChangeRecord:
    """A copy of ``record`` whose images (and raw record) carry masked values: what may be stored or logged.

    ``masks`` may hold the columns of several routes of the record's table, each with its own key."""
    masked = [(c, key) for c, key in masks if c.mask is not None]
    if not masked or MASKED in record.raw:
        return record
    images = {name: _masked_image(getattr(record, attr), masked)
              for name, attr in zip(_IMAGES, ("keys", "new_image", "old_image"))}
    raw = _masked_raw(record.raw, images)
    raw[MASKED] = sorted({c.source for c, _ in masked})
    return replace(record, raw=raw, keys=images["Keys"], new_image=images["NewImage"], old_image=images["OldImage"])


def _masked_raw(raw: dict[str, Any], images: dict[str, Any]) -> dict[str, Any]:
    """The delivered record with its images replaced: in ``dynamodb`` (DynamoDB Streams), or inside the
    base64 JSON of ``kinesis.data`` (Kinesis Data Streams), so that the record still parses as delivered."""
    raw = dict(raw)
    body = raw.get("dynamodb")
    if isinstance(body, dict):
        raw["dynamodb"] = {**body, **{name: image for name, image in images.items() if name in body}}
        return raw
    kinesis = raw.get("kinesis")
    if not isinstance(kinesis, dict):
        return raw
    try:
        change = json.loads(base64.b64decode(kinesis["data"]))
        body = change["dynamodb"]
        change["dynamodb"] = {**body, **{name: image for name, image in images.items() if name in body}}
        raw["kinesis"] = {**kinesis, "data": base64.b64encode(json.dumps(change).encode("utf-8")).decode("ascii")}
    except (TypeError, KeyError, ValueError):  # not a change we can read: keep nothing of its data
        raw.pop("kinesis", None)
    return raw


def _masked_image(image: dict[str, Any] | None, masks: list[tuple[Column, bytes | None]]) -> dict[str, Any] | None:
    if image is None:
        return None
    image = dict(image)
    for column, key in masks:
        _mask_path(image, column.path, column, key)
    return image


def _mask_path(image: dict[str, Any], path: tuple[str, ...], column: Column, key: bytes | None) -> None:
    av = image.get(path[0])
    if av is None:
        return
    if len(path) > 1:
        if isinstance(av, dict) and isinstance(av.get("M"), dict):
            inner = dict(av["M"])
            _mask_path(inner, path[1:], column, key)
            image[path[0]] = {"M": inner}
        return
    assert column.mask is not None
    try:
        value = mask_value(column.mask, attrs.to_python(av), key)
    except RecordError:  # malformed: nothing of it may be kept
        value = None
    image[path[0]] = {"NULL": True} if value is None else {"S": value}
