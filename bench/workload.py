"""Realistic DynamoDB Streams Lambda events for the benchmark's routes, and the same changes
as Kinesis Data Streams for DynamoDB delivers them (the ``kinesis`` route).

A small simulation of a table and its stream: about 70% INSERT (new keys), 25% MODIFY
and 5% REMOVE (of live keys). A MODIFY or REMOVE picks, with probability ``reuse``, a
key already touched in the same batch (an item created and then updated within
seconds, the usual pattern), otherwise any live key of the table, prefilled rows
included. Items are built straight in the wire format (``{"S": ...}``): boto3's
serializer would cost more than the code being measured.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

REGION, ACCOUNT = "us-east-1", "123456789012"
FIRST_SEQUENCE = 4_000_000_000_000_000_000_000  # 22 digits, as real SequenceNumbers are
Wire = dict[str, Any]


def S(value: str) -> Wire:
    return {"S": value}


def N(value: Any) -> Wire:
    return {"N": str(value)}


def M(value: dict[str, Wire]) -> Wire:
    return {"M": value}


def L(value: list[Wire]) -> Wire:
    return {"L": value}


NAMES = ["Akua", "Mateo", "Sofia Lindqvist", "Wei", "Olumide Adeyemi", "Priya", "Jonas Müller", "Aiyana",
         "Tomás", "Fatima Zahra", "Kenji", "Zoë O'Brien", "Chiara", "Dmitri Volkov", "Amara", "Lars"]
DEPARTMENTS = ["Ops", "Eng", "Sales", "Finance", "Legal", "HR", "Support", "Marketing", "Research"]
CITIES = [("Lisbon", "PT"), ("Köln", "DE"), ("Osaka", "JP"), ("Lagos", "NG"), ("Austin", "US"), ("Lyon", "FR")]
STATUSES = ["pending", "paid", "packed", "shipped", "delivered"]
TAGS = ["gift", "express", "fragile", "b2b", "promo", "repeat", "priority", "eco"]


def employee(key: int, rng: random.Random, revision: int) -> dict[str, Wire]:
    """An Employees item as in the reference article; now and then a value the route falls back from."""
    name = rng.choice(NAMES) + ("" if rng.random() < 0.99 else " " + "x" * 20)  # 1%: too long -> 'NA'
    item = {"Id": N(key), "empName": S(name)}
    if rng.random() < 0.98:  # 2%: no department yet -> 'NA'
        item["empDepartment"] = S(rng.choice(DEPARTMENTS))
    return item


def order_id(key: int) -> str:
    """A random-looking but reproducible UUID per item: inserts land all over the primary key index."""
    return str(uuid.UUID(int=key * 0x9E3779B97F4A7C15F39CC0605CEDC835 % 2**128))


def order(key: int, rng: random.Random, revision: int) -> dict[str, Wire]:
    """A wide order document: 30 attributes with nested maps, a list of maps, sets and timestamps."""
    city, country = rng.choice(CITIES)
    lines = [M({"sku": S(f"SKU-{rng.randrange(10_000):05d}"), "qty": N(rng.randint(1, 4)),
                "price": N(f"{rng.randint(100, 99_999) / 100:.2f}")}) for _ in range(rng.randint(1, 4))]
    subtotal = rng.randint(1_000, 500_000) / 100
    created = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=rng.randrange(30_000_000))
    item = {
        "orderId": S(order_id(key)),
        "customer": M({"id": N(rng.randrange(1, 10**9)), "name": S(rng.choice(NAMES)),
                       "email": S(f"user{rng.randrange(10**6)}@example.com"),
                       "address": M({"street": S(f"{rng.randint(1, 999)} Market Street"), "city": S(city),
                                     "zip": S(f"{rng.randrange(100_000):05d}"), "country": S(country)})}),
        "status": S(STATUSES[min(revision, len(STATUSES) - 1)]),
        "channel": S(rng.choice(["web", "app", "store", "phone"])),
        "currency": S("EUR"),
        "subtotal": N(f"{subtotal:.2f}"), "tax": N(f"{subtotal * 0.2:.2f}"), "shipping": N("4.90"),
        "total": N(f"{subtotal * 1.2 + 4.9:.2f}"),
        "quantity": N(len(lines)), "priority": N(rng.randint(0, 3)), "weightKg": N(f"{rng.random() * 20:.3f}"),
        "paid": {"BOOL": revision > 0},
        "items": L(lines),
        "dimensions": M({"l": N(rng.randint(5, 80)), "w": N(rng.randint(5, 60)), "h": N(rng.randint(2, 40))}),
        "tags": {"SS": rng.sample(TAGS, rng.randint(1, 3))},
        "scores": {"NS": [f"{rng.random():.4f}" for _ in range(2)]},
        "createdAt": S(created.isoformat()),
        "updatedAt": N(int(created.timestamp() * 1000) + revision * 60_000),
        "due": S((created + dt.timedelta(days=7)).date().isoformat()),
        # unmapped attributes: they go to the extras column
        "giftMessage": S("Happy birthday!") if rng.random() < 0.2 else {"NULL": True},
        "coupon": S(f"SAVE{rng.randint(5, 30)}"), "warehouse": S(f"WH-{rng.randint(1, 9)}"),
        "source": M({"campaign": S("spring"), "referrer": S("newsletter")}),
        "loyaltyPoints": N(rng.randrange(5_000)), "locale": S("en-GB"),
    }
    if revision >= 3:
        item["shippedAt"] = S((created + dt.timedelta(days=1)).isoformat())
        item["carrier"], item["tracking"] = S("DHL"), S(f"JD{rng.randrange(10**12):012d}")
    return item


@dataclass(frozen=True)
class Workload:
    route: str                                   # route name in bench/tables.yaml
    source: str                                  # DynamoDB table
    keys: Callable[[int], dict[str, Wire]]       # key attributes of item number i
    key_text: Callable[[int], str]               # the target's key column of item number i, as COPY text
    item: Callable[[int, random.Random, int], dict[str, Wire]]
    kinesis: str | None = None                   # the Kinesis data stream its changes go through

    @property
    def arn(self) -> str:
        return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{self.source}/stream/2024-01-01T00:00:00.000"


WORKLOADS = {
    "employees": Workload("employees", "Employees", lambda i: {"Id": N(i)}, str, employee),
    "wide": Workload("wide", "Orders", lambda i: {"orderId": S(order_id(i))}, order_id, order),
    # the Employees changes through Kinesis: base64 JSON records with both images, ordered by creation time
    "kinesis": Workload("kinesis", "EmployeesKinesis", lambda i: {"Id": N(i)}, str, employee, kinesis="changes"),
}
FIRST_KINESIS_SEQUENCE = 49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898  # 56 digits


class StreamSimulator:
    """Generates batches for one table whose items 1..prefill already exist."""

    def __init__(self, workload: Workload, prefill: int, seed: int = 7, reuse: float = 0.5,
                 mix: tuple[float, float, float] = (0.70, 0.25, 0.05)):
        self.workload, self.rng, self.reuse = workload, random.Random(seed), reuse
        self.insert_share, self.modify_share = mix[0], mix[0] + mix[1]
        self.live = list(range(1, prefill + 1))   # keys, with O(1) removal by swapping
        self.position = {key: i for i, key in enumerate(self.live)}
        self.revisions: dict[int, int] = {}
        self.next_key, self.sequence, self.clock = prefill + 1, FIRST_SEQUENCE, 1_714_000_000.0

    def batch(self, size: int) -> dict[str, Any]:
        touched: list[int] = []
        records = [self._record(touched) for _ in range(size)]
        return {"Records": records}

    def _record(self, touched: list[int]) -> dict[str, Any]:
        draw = self.rng.random()
        key = self._pick(touched) if draw >= self.insert_share else None
        if key is None:
            key, name = self._new_key(), "INSERT"
        else:
            name = "MODIFY" if draw < self.modify_share else "REMOVE"
        touched.append(key)
        self.sequence += self.rng.randint(1, 1000)
        self.clock += 0.001
        body: dict[str, Any] = {"ApproximateCreationDateTime": round(self.clock, 3), "Keys": self.workload.keys(key),
                                "SequenceNumber": str(self.sequence), "StreamViewType": "NEW_IMAGE"}
        if name == "REMOVE":
            self._remove(key)
        else:
            revision = self.revisions[key] = self.revisions.get(key, -1) + 1
            body["NewImage"] = self.workload.item(key, self.rng, revision)
        body["SizeBytes"] = 60 + 40 * len(body.get("NewImage", ()))
        return {"eventID": f"{self.sequence % 16**32:032x}", "eventName": name, "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": REGION, "dynamodb": body,
                "eventSourceARN": self.workload.arn}

    def _pick(self, touched: list[int]) -> int | None:
        if touched and self.rng.random() < self.reuse:
            key = self.rng.choice(touched)
            if key in self.position:
                return key
        return self.live[self.rng.randrange(len(self.live))] if self.live else None

    def _new_key(self) -> int:
        key, self.next_key = self.next_key, self.next_key + 1
        self.position[key] = len(self.live)
        self.live.append(key)
        return key

    def _remove(self, key: int) -> None:
        index, last = self.position.pop(key), self.live.pop()
        if last != key:
            self.live[index], self.position[last] = last, index


def events(workload: Workload, batch_size: int, batches: int, prefill: int, seed: int = 7) -> list[dict[str, Any]]:
    """``batches`` Lambda events of ``batch_size`` records for a table prefilled with ``prefill`` items."""
    simulator = StreamSimulator(workload, prefill, seed)
    batches_ = [simulator.batch(batch_size) for _ in range(batches)]
    return [KinesisConverter(workload).event(batch) for batch in batches_] if workload.kinesis else batches_


class KinesisConverter:
    """DynamoDB Streams records as Lambda's Kinesis records: what DynamoDB's Kinesis streaming
    destination puts (both images, ApproximateCreationDateTime in microseconds), base64 in ``kinesis.data``."""

    def __init__(self, workload: Workload):
        self.workload, self.sequence = workload, FIRST_KINESIS_SEQUENCE
        self.arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{workload.kinesis}"
        self.images: dict[str, Wire] = {}  # the last image of each key, for OldImage

    def event(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"Records": [self._record(record) for record in batch["Records"]]}

    def _record(self, record: dict[str, Any]) -> dict[str, Any]:
        body, key = record["dynamodb"], json.dumps(record["dynamodb"]["Keys"])
        change: dict[str, Any] = {"ApproximateCreationDateTime": round(body["ApproximateCreationDateTime"] * 1e6),
                                  "Keys": body["Keys"], "SizeBytes": body["SizeBytes"]}
        if "NewImage" in body:
            change["NewImage"] = body["NewImage"]
        old = self.images.pop(key, None) if record["eventName"] == "REMOVE" else self.images.get(key)
        if old is not None:
            change["OldImage"] = old
        if "NewImage" in body:
            self.images[key] = body["NewImage"]
        data = {"awsRegion": REGION, "eventID": record["eventID"], "eventName": record["eventName"],
                "userIdentity": None, "recordFormat": "application/json", "tableName": self.workload.source,
                "dynamodb": change, "eventSource": "aws:dynamodb"}
        self.sequence += 1_000
        return {"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": key, "sequenceNumber": str(self.sequence),
                            "data": base64.b64encode(json.dumps(data).encode()).decode("ascii"),
                            "approximateArrivalTimestamp": body["ApproximateCreationDateTime"]},
                "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"shardId-000000000000:{self.sequence}",
                "eventName": "aws:kinesis:record", "awsRegion": REGION, "eventSourceARN": self.arn}
