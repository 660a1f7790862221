"""Reduce: one change per target row, without touching its inputs."""

from __future__ import annotations

import copy

from factories import MEMORY, Stream, route, tables
from memory_sink import parse

from router.reduce import reduce_changes
from router.transform import RouteTransform
from sources.dynamodb_streams import parse_record

CONFIG = tables({"employees": route("employees", sink="mem", deletes="soft", columns={
    "Id": {"type": "bigint"}, "Name": {"from": "empName", "type": "text"}})}, {"mem": MEMORY})


def test_reduce_leaves_its_inputs_as_they_were_so_a_refused_record_can_be_taken_out() -> None:
    # GIVEN an upsert and a soft delete of one key
    route = parse(CONFIG).routes["employees"]
    stream = Stream("Employees")
    raw = [stream.insert({"Id": 1, "empName": "Ana"}), stream.remove({"Id": 1})]
    changes = [RouteTransform(route)(parse_record(r, i)) for i, r in enumerate(raw)]
    before = [copy.copy((c.row, c.first, c.values_from)) for c in changes]
    # WHEN reduced THEN the survivor is the delete carrying the upsert's values, from the upsert's record
    (survivor,) = reduce_changes(changes)
    assert (survivor.row, survivor.first, survivor.values_from) == ({"Id": 1, "Name": "Ana"}, 0, changes[0].record)
    # AND the inputs are unchanged: without the upsert, the delete reduces to the key alone
    assert [(c.row, c.first, c.values_from) for c in changes] == before
    (alone,) = reduce_changes(changes[1:])
    assert (alone.row, alone.keeps_values) == ({"Id": 1}, False)
