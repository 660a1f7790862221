"""The batch pipeline over in-memory sinks: what is committed, what is reported back to Lambda.

Stop at the first failure: everything before it is committed, it and everything after it
are reported (through its SequenceNumber) so that Lambda retries from there, in order.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from factories import MEMORY, Stream, event, load_event, tables
from factories import route as route_factory
from memory_sink import MemorySink, pipeline_of

from router.errors import InvalidEventError
from router.model import DELETED_COLUMN, VERSION_COLUMN
from router.pipeline import BatchResult, Pipeline
from router.sink import RejectedChangeError, RouteStats, SinkError, TransientSinkError

EMPLOYEE_COLUMNS = {
    "Id": {"type": "bigint"},
    "Name": {"from": "empName", "type": "varchar(20)"},            # no fallback: a long name is a poison record
    "Department": {"from": "empDepartment", "type": "varchar(10)", "fallback": "NA"},
}
POISON_NAME = "x" * 25
POISON_ERROR = (f"column 'Name' (from 'empName'): '{POISON_NAME}' does not fit varchar(20): "
                "25 characters, at most 20 allowed")


route = functools.partial(route_factory, table="employees", sink="hot", columns=EMPLOYEE_COLUMNS)


def pipeline_for(routes: dict[str, dict[str, Any]] | None = None, unrouted: str = "fail") -> Pipeline:
    """A pipeline over two memory sinks, ``hot`` and ``cold``; by default one ``employees`` route."""
    return pipeline_of(tables(routes or {"employees": route()}, {"hot": MEMORY, "cold": MEMORY}, unrouted=unrouted))


def sink(pipeline: Pipeline, name: str = "hot") -> MemorySink:
    memory = pipeline.sinks[name]
    assert isinstance(memory, MemorySink)
    return memory


def rows(pipeline: Pipeline, route_name: str = "employees") -> list[dict[str, Any]]:
    """The route's whole target table, ordered by key, without bookkeeping columns."""
    route_ = pipeline.config.routes[route_name]
    table = sink(pipeline, route_.sink).rows(route_)
    return [{k: v for k, v in table[key].items() if not k.startswith("_cdc_")} for key in sorted(table)]


def failed_at(record: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    return {"batchItemFailures": [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]}


OK = {"batchItemFailures": []}


def employee(id_: int, name: str = "Akua", department: str = "AnyDept") -> dict[str, Any]:
    return {"Id": id_, "empName": name, "empDepartment": department}


def row(id_: int, name: str = "Akua", department: str = "AnyDept") -> dict[str, Any]:
    return {"Id": id_, "Name": name, "Department": department}


# -- the saved events ----------------------------------------------------------------------

def test_put_update_delete_leaves_a_tombstone_that_stops_a_stale_replay() -> None:
    # GIVEN the reference article's put, update and delete of item 2001 in one batch
    pipeline = pipeline_for()
    # WHEN processed THEN the batch succeeds, no row is left, and a tombstone holds the delete's version
    result = pipeline.process(load_event("employees_put_update_delete_2001.json"))
    assert result.response == OK
    assert rows(pipeline) == []
    assert sink(pipeline).tombstones == {(("public", "employees"), (2001,)): 111000000000000000000201}
    # WHEN the older put is replayed (a retry, a bisected half) THEN the row is not resurrected
    replay = pipeline.process(load_event("employees_put_2001.json"))
    assert replay.response == OK
    assert rows(pipeline) == []
    assert replay.stats["employees"] == RouteStats(stale=1)


def test_put_then_keys_only_delete() -> None:
    pipeline = pipeline_for()
    # GIVEN the article's put WHEN processed THEN the row exists
    assert pipeline.process(load_event("employees_put_2001.json")).response == OK
    assert rows(pipeline) == [row(2001, "Akua", "AnyDept")]
    # WHEN its KEYS_ONLY delete arrives THEN the row is gone
    result = pipeline.process(load_event("employees_delete_keys_only.json"))
    assert (result.response, rows(pipeline), result.stats["employees"]) == (OK, [], RouteStats(deleted=1))


def whole_table(pipeline: Pipeline, route_name: str = "employees") -> list[dict[str, Any]]:
    """The target table with its bookkeeping columns, times as ISO text."""
    table = sink(pipeline, pipeline.config.routes[route_name].sink).rows(pipeline.config.routes[route_name])
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in table[key].items()}
            for key in sorted(table)]


DELETES_MODES = [
    # hard: the row goes
    ("hard", []),
    # soft: the row stays as the MODIFY left it, marked deleted at the REMOVE's time and version
    ("soft", [{**row(7, "Ana", "Eng"), VERSION_COLUMN: 111000000000000000000801,
               DELETED_COLUMN: "2023-11-14T22:13:20+00:00"}]),
    # ignore: the row stays as the MODIFY left it
    ("ignore", [{**row(7, "Ana", "Eng"), VERSION_COLUMN: 111000000000000000000701}]),
]


@pytest.mark.parametrize("deletes, expected", DELETES_MODES)
def test_deletes_modes_on_new_and_old_images(deletes: str, expected: list[dict[str, Any]]) -> None:
    # GIVEN a route per deletes mode WHEN the saved MODIFY + REMOVE batch is processed
    pipeline = pipeline_for({"employees": route(deletes=deletes)})
    assert pipeline.process(load_event("employees_modify_remove_new_and_old.json")).response == OK
    # THEN the target holds what the mode says (bookkeeping columns included)
    assert whole_table(pipeline) == expected


@pytest.mark.parametrize("deletes, expected", DELETES_MODES)
def test_deletes_modes_do_not_depend_on_batch_boundaries(deletes: str, expected: list[dict[str, Any]]) -> None:
    # GIVEN the same MODIFY and REMOVE delivered as two batches (as a bisected retry would)
    pipeline = pipeline_for({"employees": route(deletes=deletes)})
    modify, remove = load_event("employees_modify_remove_new_and_old.json")["Records"]
    # WHEN processed one after the other
    assert [pipeline.process(event([r])).response for r in (modify, remove)] == [OK, OK]
    # THEN the target is the same as when they came in one batch
    assert whole_table(pipeline) == expected


# -- stop at the first failure ---------------------------------------------------------------

def test_poison_record_under_on_error_fail_stops_the_batch_there() -> None:
    # GIVEN a batch: a good record, a name too long for varchar(20) (no fallback), a good record
    pipeline = pipeline_for()
    stream = Stream("Employees")
    good, poison, after = (stream.insert(employee(1)), stream.insert(employee(2, POISON_NAME)),
                           stream.insert(employee(3)))
    # WHEN processed
    result = pipeline.process(event([good, poison, after]))
    # THEN the first record is committed, the poison one is reported, the one after it is not applied
    assert result.response == failed_at(poison)
    assert rows(pipeline) == [row(1)]
    assert (result.failure.index, result.failure.route, result.failure.transient) == (1, "employees", False)
    assert result.failure.reason == (f"record 1 (table Employees, SequenceNumber "
                                     f"{poison['dynamodb']['SequenceNumber']}): {POISON_ERROR}")
    assert result.stats["employees"] == RouteStats(upserted=1, failed=2)
    # WHEN Lambda retries from the poison record THEN it fails there again, nothing else changes
    retry = pipeline.process(event([poison, after]))
    assert (retry.response, rows(pipeline)) == (failed_at(poison), [row(1)])


def test_poison_record_under_dead_letter_is_kept_and_the_batch_completes() -> None:
    # GIVEN the same batch on a dead_letter route
    pipeline = pipeline_for({"employees": route(on_error="dead_letter")})
    stream = Stream("Employees")
    good, poison, after = (stream.insert(employee(1)), stream.insert(employee(2, POISON_NAME)),
                           stream.insert(employee(3)))
    # WHEN processed
    result = pipeline.process(event([good, poison, after]))
    # THEN every good record is committed and the poison one is dead-lettered with its raw record and reason
    assert result.response == OK
    assert rows(pipeline) == [row(1), row(3)]
    sequence = poison["dynamodb"]["SequenceNumber"]
    assert sink(pipeline).dead_letters == [{"route": "employees", "source_table": "Employees",
                                            "sequence_number": sequence, "error": POISON_ERROR, "record": poison}]
    assert result.stats["employees"] == RouteStats(upserted=2, dead_lettered=1)


@pytest.mark.parametrize("unrouted", ["fail", "skip"])
def test_record_of_a_table_without_a_route(unrouted: str) -> None:
    # GIVEN a batch with a record from a table no route reads
    pipeline = pipeline_for(unrouted=unrouted)
    employees, other = Stream("Employees"), Stream("Payroll", start=5 * 10**20)
    first, stray, last = employees.insert(employee(1)), other.insert({"Id": 9}), employees.insert(employee(3))
    # WHEN processed
    result = pipeline.process(event([first, stray, last]))
    if unrouted == "fail":
        # THEN by default the stream stops there, with a message naming the table and the config file
        assert result.response == failed_at(stray)
        assert rows(pipeline) == [row(1)]
        assert result.failure.reason == (
            f"record 1 (table Payroll, SequenceNumber {stray['dynamodb']['SequenceNumber']}): no route for "
            "DynamoDB table 'Payroll' in test.yaml (add a route with source: Payroll, or set unrouted: skip)")
    else:
        # THEN with unrouted: skip it is skipped and the batch completes
        assert result.response == OK
        assert rows(pipeline) == [row(1), row(3)]


def test_one_record_feeds_two_routes() -> None:
    # GIVEN two routes reading the Employees table into two targets on two sinks
    pipeline = pipeline_for({
        "employees": route(),
        "directory": {"source": "Employees", "sink": "cold", "table": "directory", "key": ["Id"],
                      "columns": {"Id": {"type": "bigint"}, "Name": {"from": "empName"}}},
    })
    stream = Stream("Employees")
    # WHEN one item is inserted, and another inserted then deleted
    result = pipeline.process(event([stream.insert(employee(1)), stream.insert(employee(2)),
                                     stream.remove({"Id": 2})]))
    # THEN both targets hold item 1 only
    assert result.response == OK
    assert rows(pipeline, "employees") == [row(1)]
    assert rows(pipeline, "directory") == [{"Id": 1, "Name": "Akua"}]
    assert result.stats["employees"] == result.stats["directory"] == RouteStats(upserted=1)


def test_one_failing_route_fails_the_record_for_every_route() -> None:
    # GIVEN a dead_letter route and a fail route on the same table, and a record poison for both
    pipeline = pipeline_for({
        "archive": route(table="archive", sink="cold", on_error="dead_letter"),
        "employees": route(),
    })
    stream = Stream("Employees")
    good, poison = stream.insert(employee(1)), stream.insert(employee(2, POISON_NAME))
    # WHEN processed
    result = pipeline.process(event([good, poison]))
    # THEN the record fails as a whole: no half-applied record, no dead letter for it
    assert result.response == failed_at(poison)
    assert rows(pipeline, "archive") == rows(pipeline, "employees") == [row(1)]
    assert sink(pipeline, "cold").dead_letters == []


# -- reduce ----------------------------------------------------------------------------------

def test_only_the_last_change_per_key_is_written() -> None:
    # GIVEN three changes of item 1 and one of item 2 in a batch
    pipeline = pipeline_for()
    stream = Stream("Employees")
    records = [stream.insert(employee(1, "Akua")), stream.insert(employee(2, "Kofi")),
               stream.modify(employee(1, "Ama")), stream.modify(employee(1, "Abena", "ExDept"))]
    # WHEN processed
    result = pipeline.process(event(records))
    # THEN each key is written once, with its last state and the last record's version
    assert result.response == OK
    assert rows(pipeline) == [row(1, "Abena", "ExDept"), row(2, "Kofi")]
    assert result.stats["employees"] == RouteStats(upserted=2)
    table = sink(pipeline).rows(pipeline.config.routes["employees"])
    assert table[(1,)][VERSION_COLUMN] == int(records[3]["dynamodb"]["SequenceNumber"])


def test_delete_after_upsert_in_one_batch_leaves_no_row() -> None:
    # GIVEN an existing item 1, then a batch that updates and deletes it, and inserts item 2
    pipeline = pipeline_for()
    stream = Stream("Employees")
    assert pipeline.process(event([stream.insert(employee(1))])).response == OK
    batch = [stream.modify(employee(1, "Ama")), stream.insert(employee(2)), stream.remove({"Id": 1})]
    # WHEN processed THEN the delete is not reordered before the update: item 1 is gone
    result = pipeline.process(event(batch))
    assert (result.response, rows(pipeline)) == (OK, [row(2)])
    assert result.stats["employees"] == RouteStats(upserted=1, deleted=1)
    # WHEN the whole batch is delivered again (at least once) THEN nothing changes
    again = pipeline.process(event(batch))
    assert (again.response, rows(pipeline)) == (OK, [row(2)])


def test_upsert_after_delete_in_one_batch_keeps_the_row() -> None:
    # GIVEN a batch that deletes item 1 and then puts it back
    pipeline = pipeline_for()
    stream = Stream("Employees")
    batch = [stream.insert(employee(1)), stream.remove({"Id": 1}), stream.insert(employee(1, "Ama"))]
    # WHEN processed THEN the row holds the last put
    assert pipeline.process(event(batch)).response == OK
    assert rows(pipeline) == [row(1, "Ama")]


# -- sink failures ---------------------------------------------------------------------------

def two_sink_pipeline() -> Pipeline:
    return pipeline_for({"employees": route(), "departments": route(source="Departments", table="departments",
                                                                        sink="cold")})


def two_sink_batch() -> list[dict[str, Any]]:
    """r0 Employees (hot), r1 Departments 10 (cold), r2 Employees (hot), r3 Departments 10 again (cold)."""
    employees, departments = Stream("Employees"), Stream("Departments", start=10**20 + 50)
    return [employees.insert(employee(1)), departments.insert(employee(10, "Ops")),
            employees.insert(employee(2)), departments.modify(employee(10, "Ops2"))]


@pytest.mark.parametrize("error, transient", [
    # the database went away: retrying the batch can succeed
    (TransientSinkError("connection lost"), True),
    # any other failure of the whole sink
    (SinkError("permission denied for schema"), False),
    # a rejection the sink could not pin on one change
    (RejectedChangeError("deadlock detected", None), False),
])
def test_sink_failure_reports_the_earliest_record_of_that_sinks_share(error: SinkError, transient: bool) -> None:
    # GIVEN two sinks, and the cold one fails on the next batch
    pipeline = two_sink_pipeline()
    sink(pipeline, "cold").fail_next(error)
    batch = two_sink_batch()
    # WHEN processed
    result = pipeline.process(event(batch))
    # THEN the hot sink's share is committed, the cold one's is not, and the earliest cold record (r1, although
    # its change was merged into r3's) is where Lambda retries from
    assert result.response == failed_at(batch[1])
    assert (result.failure.index, result.failure.transient) == (1, transient)
    assert result.failure.reason == f"sink 'cold': {error}"
    assert rows(pipeline, "employees") == [row(1), row(2)]
    assert rows(pipeline, "departments") == []
    # WHEN Lambda retries from r1 THEN everything converges (r2 again is a no-op)
    retry = pipeline.process(event(batch[1:]))
    assert retry.response == OK
    assert rows(pipeline, "employees") == [row(1), row(2)]
    assert rows(pipeline, "departments") == [row(10, "Ops2")]
    assert retry.stats["employees"] == RouteStats(stale=1)


def test_earlier_of_a_sink_failure_and_a_record_failure_is_reported() -> None:
    # GIVEN the cold sink fails (its share starts at r1) and r4 is a poison record for the hot sink
    pipeline = two_sink_pipeline()
    sink(pipeline, "cold").fail_next(TransientSinkError("timeout"))
    batch = two_sink_batch()
    batch.append(Stream("Employees", start=2 * 10**20).insert(employee(3, POISON_NAME)))
    # WHEN processed THEN Lambda retries from r1, the earlier of the two
    result = pipeline.process(event(batch))
    assert result.response == failed_at(batch[1])
    assert rows(pipeline, "employees") == [row(1), row(2)]


def reject_key(pipeline: Pipeline, key: tuple[Any, ...]) -> None:
    sink(pipeline).reject(lambda change: change.key == key)


def test_rejected_change_under_on_error_fail_cuts_the_batch_before_it() -> None:
    # GIVEN the database refuses item 2
    pipeline = pipeline_for()
    reject_key(pipeline, (2,))
    stream = Stream("Employees")
    batch = [stream.insert(employee(1)), stream.insert(employee(2)), stream.insert(employee(3))]
    # WHEN processed
    result = pipeline.process(event(batch))
    # THEN what came before it is committed, it is reported, what came after is not applied
    assert result.response == failed_at(batch[1])
    assert rows(pipeline) == [row(1)]
    assert (result.failure.route, result.failure.transient) == ("employees", False)
    sequence = batch[1]["dynamodb"]["SequenceNumber"]
    assert result.failure.reason == (f"record 1 (table Employees, SequenceNumber {sequence}): "
                                     "rejected by the database: rejected by the memory sink's test predicate")


def test_rejected_change_merged_from_several_records_is_reported_at_the_first() -> None:
    # GIVEN item 2 changed at r0 and r2 (one reduced change), item 1 at r1, and the database refuses item 2
    pipeline = pipeline_for()
    reject_key(pipeline, (2,))
    stream = Stream("Employees")
    batch = [stream.insert(employee(2)), stream.insert(employee(1)), stream.modify(employee(2, "Ama"))]
    # WHEN processed THEN Lambda must retry from r0, so nothing after it may be committed
    result = pipeline.process(event(batch))
    assert result.response == failed_at(batch[0])
    assert rows(pipeline) == []


def test_rejected_change_under_dead_letter_is_dead_lettered() -> None:
    # GIVEN a dead_letter route and the database refuses item 2
    pipeline = pipeline_for({"employees": route(on_error="dead_letter")})
    reject_key(pipeline, (2,))
    stream = Stream("Employees")
    batch = [stream.insert(employee(1)), stream.insert(employee(2)), stream.insert(employee(3))]
    # WHEN processed
    result = pipeline.process(event(batch))
    # THEN the others are committed and item 2's record is dead-lettered with the database's reason
    assert result.response == OK
    assert rows(pipeline) == [row(1), row(3)]
    sequence = batch[1]["dynamodb"]["SequenceNumber"]
    assert sink(pipeline).dead_letters == [{
        "route": "employees", "source_table": "Employees", "sequence_number": sequence, "record": batch[1],
        "error": f"record 1 (table Employees, SequenceNumber {sequence}): rejected by the database: "
                 "rejected by the memory sink's test predicate"}]
    assert result.stats["employees"] == RouteStats(upserted=2, dead_lettered=1)


# -- malformed records and events ----------------------------------------------------------

def without_sequence_number(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "dynamodb": {k: v for k, v in record["dynamodb"].items() if k != "SequenceNumber"}}


def test_malformed_record_without_sequence_number_retries_from_the_record_before() -> None:
    # GIVEN a batch whose middle record has no SequenceNumber
    pipeline = pipeline_for()
    stream = Stream("Employees")
    good, broken, after = (stream.insert(employee(1)), without_sequence_number(stream.insert(employee(2))),
                           stream.insert(employee(3)))
    # WHEN processed
    result = pipeline.process(event([good, broken, after]))
    # THEN it fails there; as it has no SequenceNumber, Lambda is told to retry from the record before
    # (already committed, so replaying it is a no-op)
    assert result.failure.index == 1
    assert result.failure.reason == ("record 1 (table Employees, SequenceNumber None): "
                                     "invalid SequenceNumber None (expected a decimal string)")
    assert result.response == failed_at(good)
    assert rows(pipeline) == [row(1)]


def test_malformed_record_without_sequence_number_is_dead_lettered() -> None:
    # GIVEN the same batch on a dead_letter route WHEN processed THEN the record is dead-lettered
    pipeline = pipeline_for({"employees": route(on_error="dead_letter")})
    stream = Stream("Employees")
    good, broken, after = (stream.insert(employee(1)), without_sequence_number(stream.insert(employee(2))),
                           stream.insert(employee(3)))
    result = pipeline.process(event([good, broken, after]))
    assert result.response == OK
    assert rows(pipeline) == [row(1), row(3)]
    assert sink(pipeline).dead_letters == [{"route": "employees", "source_table": "Employees",
                                            "sequence_number": None, "record": broken,
                                            "error": "invalid SequenceNumber None (expected a decimal string)"}]


def test_first_record_without_sequence_number_fails_the_invocation() -> None:
    # GIVEN a batch whose first record is broken and has no SequenceNumber to report
    pipeline = pipeline_for()
    stream = Stream("Employees")
    batch = [without_sequence_number(stream.insert(employee(1))), stream.insert(employee(2))]
    # WHEN processed and answered THEN the invocation fails as a whole (Lambda retries the batch)
    with pytest.raises(InvalidEventError) as caught:
        _ = pipeline.process(event(batch)).response
    assert str(caught.value) == "record 0 failed and no record up to it has a SequenceNumber to retry from"
    # AND nothing was committed
    assert rows(pipeline) == []


def test_record_with_a_foreign_arn_fails_even_under_dead_letter() -> None:
    # GIVEN a dead_letter route and a record whose ARN names no table (so no route can own it)
    pipeline = pipeline_for({"employees": route(on_error="dead_letter")})
    stream = Stream("Employees")
    good, foreign = stream.insert(employee(1)), {**stream.insert(employee(2)), "eventSourceARN": "arn:aws:sqs:x"}
    # WHEN processed THEN it fails there
    result = pipeline.process(event([good, foreign]))
    assert result.response == failed_at(foreign)
    assert rows(pipeline) == [row(1)]


@pytest.mark.parametrize("bad_event", [[], {"records": []}, None])
def test_invalid_event_raises(bad_event: Any) -> None:
    with pytest.raises(InvalidEventError):
        pipeline_for().process(bad_event)


def test_empty_batch() -> None:
    result: BatchResult = pipeline_for().process({"Records": []})
    assert (result.response, result.failure, result.max_lag_ms) == (OK, None, None)
