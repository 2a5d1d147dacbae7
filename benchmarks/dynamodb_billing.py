"""What DynamoDB bills for a write or a read, from the items' real sizes and the table's indexes.

moto does not bill, so the capacity model computes the units itself, by DynamoDB's published rules
(pages in benchmarks.capacity_figures):

- an item's size is the sum of its attribute names' and values' sizes (item sizes and formats);
- a write consumes one unit per KB of the larger of the item before and after, rounded up; a
  transactional write two; a conditional write whose condition fails still consumes the units of
  the item as it is (at least one);
- an index is written when the projected item changes: an item that enters the index is a put, one
  that leaves it a delete, one whose index key changes a delete plus a put, one whose projected
  attributes change an update; each is billed on the projected item's size. An item without the
  index's key attributes is not in it (a sparse index);
- a read consumes one unit per 4 KB (half for an eventually consistent read); a query's items are
  summed before rounding.

Index definitions are read from the template (the `GlobalSecondaryIndexes` of the table), so an
index is modelled as it deploys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

Item = Mapping[str, Mapping[str, Any]]  # an item in DynamoDB's JSON: name -> {"S": ...}


def number_size(text: str) -> int:
    """Bytes of a number: one per two significant digits, plus one (leading and trailing zeroes trimmed)."""
    digits = format(abs(Decimal(text)), "f").replace(".", "").strip("0")
    return (max(1, len(digits)) + 1) // 2 + 1


def value_size(value: Mapping[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode("utf-8"))
    if kind == "N":
        return number_size(str(data))
    if kind == "B":
        return len(data) if isinstance(data, bytes | bytearray) else len(str(data))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(member).encode("utf-8")) for member in data)
    if kind == "NS":
        return sum(number_size(str(member)) for member in data)
    if kind == "BS":
        return sum(len(member) for member in data)
    if kind == "L":
        return 3 + sum(value_size(member) + 1 for member in data)
    if kind == "M":
        return 3 + sum(len(name.encode("utf-8")) + value_size(member) + 1 for name, member in data.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Item | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def read_units(size: int, *, consistent: bool) -> float:
    units = max(1, math.ceil(size / 4096))
    return float(units) if consistent else units / 2


@dataclass(frozen=True)
class IndexDefinition:
    name: str
    hash_key: str
    range_key: str | None
    projection: str  # ALL, KEYS_ONLY or INCLUDE
    non_key_attributes: tuple[str, ...]
    table_keys: tuple[str, ...]

    def key_attributes(self) -> tuple[str, ...]:
        return (self.hash_key,) if self.range_key is None else (self.hash_key, self.range_key)

    def projected(self, item: Item | None) -> dict[str, Any] | None:
        """The index's item for a table item, or None when the item is not in the index."""
        if not item or any(key not in item for key in self.key_attributes()):
            return None
        if self.projection == "ALL":
            return dict(item)
        kept = set(self.key_attributes()) | set(self.table_keys)
        if self.projection == "INCLUDE":
            kept |= set(self.non_key_attributes)
        return {name: value for name, value in item.items() if name in kept}

    def partition(self, item: Item) -> str:
        ((_, value),) = item[self.hash_key].items()
        return str(value)


def indexes_of(table_properties: Mapping[str, Any]) -> list[IndexDefinition]:
    """The global secondary indexes of an AWS::DynamoDB::Table's (resolved) Properties."""
    table_keys = tuple(key["AttributeName"] for key in table_properties.get("KeySchema", []))
    found = []
    for index in table_properties.get("GlobalSecondaryIndexes") or []:
        schema = {key["KeyType"]: key["AttributeName"] for key in index["KeySchema"]}
        projection = index.get("Projection", {})
        found.append(
            IndexDefinition(
                name=index["IndexName"],
                hash_key=schema["HASH"],
                range_key=schema.get("RANGE"),
                projection=projection.get("ProjectionType", "ALL"),
                non_key_attributes=tuple(projection.get("NonKeyAttributes", [])),
                table_keys=table_keys,
            )
        )
    return found


@dataclass(frozen=True)
class IndexWrite:
    index: str
    partition: str  # the index partition key value written
    kind: str  # put, delete or update
    units: int


def index_writes(index: IndexDefinition, before: Item | None, after: Item | None) -> list[IndexWrite]:
    old, new = index.projected(before), index.projected(after)
    if old == new:
        return []
    if old is None:
        return [IndexWrite(index.name, index.partition(new), "put", write_units(item_size(new)))]  # type: ignore[arg-type]
    if new is None:
        return [IndexWrite(index.name, index.partition(old), "delete", write_units(item_size(old)))]
    if any(old.get(key) != new.get(key) for key in index.key_attributes()):
        return [
            IndexWrite(index.name, index.partition(old), "delete", write_units(item_size(old))),
            IndexWrite(index.name, index.partition(new), "put", write_units(item_size(new))),
        ]
    return [IndexWrite(index.name, index.partition(new), "update", write_units(max(item_size(old), item_size(new))))]


@dataclass(frozen=True)
class WriteCost:
    table_units: int
    index: list[IndexWrite]


def write_cost(
    before: Item | None,
    after: Item | None,
    indexes: list[IndexDefinition],
    *,
    transactional: bool,
    condition_failed: bool,
) -> WriteCost:
    """Units of one item's write: the table's (doubled in a transaction) and each index's."""
    factor = 2 if transactional else 1
    if condition_failed:
        # The item is unchanged; the units are those of the item as it is (at least one).
        return WriteCost(factor * write_units(item_size(before)), [])
    table = factor * write_units(max(item_size(before), item_size(after)))
    return WriteCost(table, [write for index in indexes for write in index_writes(index, before, after)])
