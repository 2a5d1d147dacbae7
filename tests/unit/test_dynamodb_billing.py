"""The capacity model's DynamoDB billing rules: item sizes, index writes, transactions, failed conditions."""

from __future__ import annotations

from typing import Any

from benchmarks.dynamodb_billing import (
    IndexDefinition,
    index_writes,
    indexes_of,
    item_size,
    number_size,
    read_units,
    write_cost,
    write_units,
)

STATUS_INDEX = {
    "KeySchema": [{"AttributeName": "jobId", "KeyType": "HASH"}],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "byStatus",
            "KeySchema": [
                {"AttributeName": "status", "KeyType": "HASH"},
                {"AttributeName": "createdAt", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
        {
            "IndexName": "openJobs",
            "KeySchema": [{"AttributeName": "openShard", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        },
    ],
}


def job(status: str, **more: Any) -> dict[str, Any]:
    return {
        "jobId": {"S": "j-1"},
        "status": {"S": status},
        "createdAt": {"S": "2026-12-03T12:00:00.000Z"},
        **{name: {"S": value} if isinstance(value, str) else value for name, value in more.items()},
    }


def test_sizes_follow_the_documented_rules():
    assert item_size({"jobId": {"S": "abc"}}) == len("jobId") + 3
    assert number_size("123") == 3  # two bytes for three significant digits, plus one
    assert number_size("1000") == 2  # trailing zeroes are trimmed
    assert number_size("0.0015") == 2
    assert item_size({"ok": {"BOOL": True}}) == 3
    assert item_size({"m": {"M": {"a": {"S": "xy"}}}}) == 1 + 3 + (1 + 2 + 1)  # map overhead, one per element
    assert item_size({"l": {"L": [{"N": "7"}, {"S": ""}]}}) == 1 + 3 + (2 + 1) + (0 + 1)


def test_units_round_up_per_kilobyte_written_and_four_read():
    assert [write_units(size) for size in (0, 1, 1024, 1025)] == [1, 1, 1, 2]
    assert read_units(4096, consistent=True) == 1
    assert read_units(4097, consistent=True) == 2
    assert read_units(100, consistent=False) == 0.5


def test_a_status_change_is_a_delete_and_a_put_in_a_status_keyed_index():
    by_status, _ = indexes_of(STATUS_INDEX)
    before, after = job("CLAIMED"), job("SUBMITTED")
    writes = index_writes(by_status, before, after)
    assert [(w.kind, w.partition) for w in writes] == [("delete", "CLAIMED"), ("put", "SUBMITTED")]


def test_a_change_of_a_projected_attribute_alone_is_one_update():
    by_status, _ = indexes_of(STATUS_INDEX)
    writes = index_writes(by_status, job("SUBMITTED"), job("SUBMITTED", note="x"))
    assert [(w.kind, w.partition) for w in writes] == [("update", "SUBMITTED")]


def test_a_sparse_index_is_written_only_when_an_item_enters_or_leaves_it():
    _, open_jobs = indexes_of(STATUS_INDEX)
    assert index_writes(open_jobs, None, job("REJECTED")) == []
    [entered] = index_writes(open_jobs, None, job("CLAIMED", openShard="3"))
    assert (entered.kind, entered.partition) == ("put", "3")
    # Keys only: a change of any other attribute leaves the index alone.
    assert index_writes(open_jobs, job("CLAIMED", openShard="3"), job("SUBMITTED", openShard="3")) == []
    [left] = index_writes(open_jobs, job("SUBMITTED", openShard="3"), job("COMPLETED"))
    assert (left.kind, left.partition) == ("delete", "3")


def test_the_projection_decides_the_size_written_to_the_index():
    keys_only = IndexDefinition("k", "openShard", None, "KEYS_ONLY", (), ("jobId",))
    big = job("CLAIMED", openShard="1", payload="x" * 3000)
    [put] = index_writes(keys_only, None, big)
    assert put.units == 1
    everything = IndexDefinition("a", "openShard", None, "ALL", (), ("jobId",))
    [put] = index_writes(everything, None, big)
    assert put.units == 3


def test_transactions_double_the_table_units_and_failed_conditions_still_cost():
    indexes = indexes_of(STATUS_INDEX)
    item = job("CLAIMED", payload="x" * 1500)
    single = write_cost(None, item, indexes, transactional=False, condition_failed=False)
    together = write_cost(None, item, indexes, transactional=True, condition_failed=False)
    assert (single.table_units, together.table_units) == (2, 4)
    refused = write_cost(item, item, indexes, transactional=False, condition_failed=True)
    assert (refused.table_units, refused.index) == (2, [])
    nothing_there = write_cost(None, None, indexes, transactional=False, condition_failed=True)
    assert nothing_there.table_units == 1
