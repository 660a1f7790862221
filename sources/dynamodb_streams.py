"""Lambda events to typed change records.

A small typed view in the spirit of Powertools' ``DynamoDBStreamEvent``, built directly
from the wire dicts: Powertools' data classes cost 18-35 us per record and deserialize
whole images, where the transform only needs a few attributes, converted on demand.
Images stay in the wire format here; ``router.attrs`` converts what a route reads.
"""

from __future__ import annotations

import base64
import datetime as dt
from functools import lru_cache
from typing import Any

from router.records import EPOCH as _EPOCH
from router.records import EVENT_NAMES, VIEW_TYPES, ChangeRecord, is_sequence_number, take_images


def parse_record(raw: Any, index: int) -> ChangeRecord:
    if not isinstance(raw, dict):
        return ChangeRecord(index, {"value": repr(raw)[:200]}, None, error="record is not an object")
    body = raw.get("dynamodb")
    sequence = body.get("SequenceNumber") if isinstance(body, dict) else None
    record = ChangeRecord(index, raw, None, sequence_number=sequence if isinstance(sequence, str) else None,
                          event_id=raw.get("eventID"))
    record.table, record.error = table_from_arn(raw.get("eventSourceARN"))
    identity = raw.get("userIdentity")
    record.user_identity = identity if isinstance(identity, dict) else None
    if record.error is None:
        record.error = _fill(record, raw.get("eventName"), body)
    return record


def _fill(record: ChangeRecord, event_name: Any, body: Any) -> str | None:
    if event_name not in EVENT_NAMES:
        return f"unknown eventName {event_name!r} (expected one of {', '.join(EVENT_NAMES)})"
    if not isinstance(body, dict):
        return "record has no 'dynamodb' object"
    sequence = record.sequence_number
    if sequence is None or not is_sequence_number(sequence):
        shown = repr(body.get("SequenceNumber"))
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return f"invalid SequenceNumber {shown} (expected a decimal string)"
    error = take_images(record, body)
    if error is not None:
        return error
    view = body.get("StreamViewType")
    record.view = view if view in VIEW_TYPES else None
    record.event_name, record.version = event_name, int(sequence)
    return _created(record, body.get("ApproximateCreationDateTime"))


def _created(record: ChangeRecord, value: Any) -> str | None:
    if (type(value) is float or type(value) is int) and -1e10 < value < 1e11:  # years 1653-5138: a time surely
        record.created = value
        return None
    if isinstance(value, dt.datetime):  # boto3's get_records; Lambda sends epoch seconds
        value = value.timestamp()
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and _is_time(value)):
        record.created = value
        return None
    return f"invalid ApproximateCreationDateTime {value!r} (expected epoch seconds)"


def _is_time(seconds: float) -> bool:
    try:
        _EPOCH + dt.timedelta(seconds=seconds)
    except (OverflowError, ValueError):  # 1e300, NaN: no time at all
        return False
    return True


@lru_cache(maxsize=1024)
def _arn_table(arn: str) -> str | None:
    # arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL
    parts = arn.split(":", 5)
    resource = parts[5].split("/") if len(parts) == 6 and parts[2] == "dynamodb" else []
    return resource[1] if len(resource) >= 2 and resource[0] == "table" and resource[1] else None


def table_from_arn(arn: Any) -> tuple[str | None, str | None]:
    """``(table, None)``, or ``(None, error)`` for an ARN that names no DynamoDB table."""
    table = _arn_table(arn) if isinstance(arn, str) else None
    if table is None:
        return None, f"eventSourceARN {arn!r} is not a DynamoDB stream ARN (arn:aws:dynamodb:...:table/NAME/stream/...)"
    return table, None


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A record from the Streams API (``get_records``) as Lambda delivers it.

    The event source mapping adds ``eventSourceARN``, sends ``ApproximateCreationDateTime``
    as epoch seconds and binary values as base64 text; boto3 gives a datetime and bytes.
    """
    body = dict(record.get("dynamodb") or {})
    created = body.get("ApproximateCreationDateTime")
    if isinstance(created, dt.datetime):
        body["ApproximateCreationDateTime"] = created.timestamp()
    for name in ("Keys", "NewImage", "OldImage"):
        if isinstance(body.get(name), dict):
            body[name] = {attr: _wire_json(av) for attr, av in body[name].items()}
    return {**record, "dynamodb": body, "eventSourceARN": stream_arn}


def _wire_json(av: Any) -> Any:
    """An AttributeValue with bytes turned into base64 text, as in Lambda's JSON."""
    if not isinstance(av, dict) or len(av) != 1:
        return av
    ((tag, payload),) = av.items()
    if tag == "B" and isinstance(payload, (bytes, bytearray)):
        return {"B": base64.b64encode(payload).decode("ascii")}
    if tag == "BS" and isinstance(payload, list):
        return {"BS": [base64.b64encode(p).decode("ascii") if isinstance(p, (bytes, bytearray)) else p for p in payload]}
    if tag == "M" and isinstance(payload, dict):
        return {"M": {k: _wire_json(v) for k, v in payload.items()}}
    if tag == "L" and isinstance(payload, list):
        return {"L": [_wire_json(v) for v in payload]}
    return av
