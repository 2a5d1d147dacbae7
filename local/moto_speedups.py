"""The moto server's per-request costs that grow with the queue, removed; every answer stays the same.

A burst of thousands of uploads keeps thousands of messages in the ingestion queue (and, with no
consumer, in the completion events queue). moto does work per message on every request there:
- receiving checks each message it returns against the retention period by reading the queue's
  whole attribute set, which counts every message (ApproximateNumberOf...): a receive of 10 counts
  the queue 10 times;
- each count (sending a message builds the attribute set too) asks the clock once per message,
  through datetime arithmetic;
- every request to the server lists moto's package directory (about 180 entries, twice) under the
  server's one lock, to find the service, and lists its handler class's methods (inspect.getmembers
  over the class and its bases) to find the action's;
- sending a message builds the queue's whole attribute set (counting every message three ways) to
  read one attribute, ContentBasedDeduplication: a queue that keeps 10,000 completion events makes
  each send count them;
- deleting a message looks for its receipt handle through the whole queue twice, building each
  message's list of receipt handles twice per message: a backlog of 10,000 recovery checks makes
  every delete walk 10,000 messages with 40,000 lists built;
- every EventBridge target parses the same eight JSONPath expressions again per event;
- every DynamoDB transaction deep-copies each table it writes, every item of it, to roll back to;
- every DynamoDB update parses its UpdateExpression twice (once to check the request, once to apply
  it), though the jobs' updates use a few expression texts over and over;
- every DynamoDB answer that carries items (GetItem, BatchGetItem, Query, an update's ReturnValues)
  is written out by moto's model-driven serializer, which looks up each of an AttributeValue's ten
  members (S, N, B, SS, NS, BS, M, L, NULL, BOOL) under every alias it knows, though a value holds
  one: most of the moto server's time under a recovery backlog (BatchGetItem of 25 jobs per batch).
Here the counts answer 0 inside a send, in the sending thread only (moto's send reads nothing from
that attribute set but ContentBasedDeduplication, and the set never leaves it); a delete compares
the handle with each message's current and earlier handles in place, building no list per message
(the same messages deleted, the same error when none had it); the retention period is read from
the queue, the clock from `time.time()`, the directory listing once, a handler class's methods once
for as long as no class in its bases gains or loses an attribute (the stack adds actions to moto's
SQS handler before it serves), each JSONPath expression is parsed once, a transaction keeps copies
of the items it writes only, each UpdateExpression text is parsed once (moto's validator works on a
deep copy of the parsed tree, so the tree kept is never changed; a text that does not parse is not
kept and raises each time), and an AttributeValue held as moto holds it (a dict keyed by member
names only) is written member by member from the keys it has, in the model's member order, by the
serializer's own per-type methods (what the alias search found anyway: no alias of a member names
another member; a value of any other form, or any response transformer in force, takes moto's own
path). Installed by the local stack before its moto server
starts.
"""

from __future__ import annotations

import copy
import functools
import threading
import time
from collections.abc import Callable
from typing import Any

_installed = False


def install_moto_speedups() -> None:
    global _installed
    if _installed:
        return
    _read_moto_modules_once()
    _list_handler_methods_once()
    _sqs_without_queue_counts()
    _delete_in_one_pass()
    _send_without_counting()
    _parse_each_jsonpath_once()
    _transactions_copy_their_items_only()
    _parse_each_update_expression_once()
    _serialize_attribute_values_directly()
    _installed = True


def _read_moto_modules_once() -> None:
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]


def _list_handler_methods_once() -> None:
    from moto.core import responses

    list_methods = responses.method_names_from_class
    listed: dict[tuple[Any, ...], list[str]] = {}

    def method_names_from_class(clazz: Any) -> list[str]:
        # A class that gains or loses an attribute (an action added) changes its key.
        key = (clazz, *(len(vars(base)) for base in clazz.__mro__))
        names = listed.get(key)
        if names is None:
            names = listed[key] = list_methods(clazz)
        return list(names)

    responses.method_names_from_class = method_names_from_class  # type: ignore[assignment]


def _clock(original: Callable[..., float], per_second: float) -> Callable[..., float]:
    """moto's unix_time / unix_time_millis: the same figure for "now", without datetime arithmetic."""

    def now(dt: Any = None) -> float:
        return time.time() * per_second if dt is None else original(dt)

    return now


def _sqs_without_queue_counts() -> None:
    from moto.sqs import models

    models.unix_time = _clock(models.unix_time, 1.0)  # type: ignore[assignment]
    models.unix_time_millis = _clock(models.unix_time_millis, 1000.0)  # type: ignore[assignment]

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_period = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention_period + message.sent_timestamp / 1000 > time.time())

    models.SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]


COUNT_PROPERTIES = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_delayed",
    "approximate_number_of_messages_not_visible",
)


class _Sending(threading.local):
    """How many sends this thread is inside (moto's send_message)."""

    depth = 0


def _send_without_counting() -> None:
    from moto.sqs import models

    sending = _Sending()
    for name in COUNT_PROPERTIES:
        count = getattr(models.Queue, name).fget

        def counted(queue: Any, count: Callable[[Any], int] = count) -> int:
            return 0 if sending.depth else count(queue)

        setattr(models.Queue, name, property(counted))
    send_message = models.SQSBackend.send_message

    def send_without_counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        sending.depth += 1
        try:
            return send_message(self, *args, **kwargs)
        finally:
            sending.depth -= 1

    models.SQSBackend.send_message = send_without_counting  # type: ignore[method-assign]


def _delete_in_one_pass() -> None:
    """moto's Queue.delete_message, walking the messages once and building no list per message."""
    from moto.sqs.exceptions import ReceiptHandleIsInvalid
    from moto.sqs.models import Queue

    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return  # already deleted: deleting it again is not an error
        messages = self._messages
        deleted = [
            message
            for message in messages
            if message.receipt_handle == receipt_handle or receipt_handle in message._old_receipt_handles
        ]
        if not deleted:
            raise ReceiptHandleIsInvalid()
        for message in deleted:
            self.pending_messages.discard(message)
            self.deleted_messages.update(message.all_receipt_handles)
        gone = {id(message) for message in deleted}
        self._messages = [message for message in messages if id(message) not in gone]

    Queue.delete_message = delete_message  # type: ignore[method-assign]


def _parse_each_jsonpath_once() -> None:
    from jsonpath_ng import ext

    ext.parse = functools.lru_cache(maxsize=256)(ext.parse)


def _parse_each_update_expression_once() -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    make = functools.lru_cache(maxsize=256)(UpdateExpressionParser.make.__func__)  # type: ignore[attr-defined]
    UpdateExpressionParser.make = classmethod(make)  # type: ignore[method-assign,assignment]


ATTRIBUTE_VALUE_SHAPE = "AttributeValue"


def _serialize_attribute_values_directly() -> None:
    from moto.core.serialize import BaseJSONSerializer

    serialize_structure = BaseJSONSerializer._serialize_type_structure

    def serialize_type_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if (
            shape.name != ATTRIBUTE_VALUE_SHAPE
            or type(value) is not dict
            or not key
            or getattr(self._value_picker, "response_transformers", None)
            or not value.keys() <= shape.members.keys()
        ):
            return serialize_structure(self, serialized, value, shape, key)
        wrapper = self.MAP_TYPE()
        for member_key, member_shape in shape.members.items():
            member_value = value.get(member_key)
            if member_value is not None:
                member_shape.parent = shape
                self._serialize(wrapper, member_value, member_shape, member_key)
        self._default_serialize(serialized, wrapper, shape, key)
        return None

    BaseJSONSerializer._serialize_type_structure = serialize_type_structure  # type: ignore[method-assign]
    BaseJSONSerializer.moto_serialize_structure = serialize_structure  # type: ignore[attr-defined]


class _TablesKept(threading.local):
    """Set while this thread runs a transaction: the tables it would copy are not copied."""

    active = False


def _transactions_copy_their_items_only() -> None:
    """moto's transact_write_items, with its whole-table copies replaced by copies of the items it writes.

    moto backs up each table a transaction names (copy.deepcopy of the Table) and puts the backup
    back when the transaction fails. Here that copy returns the table itself, so putting it back
    changes nothing, and the items the transaction's actions name are copied first and restored
    if it fails. A table with a stream keeps moto's own backup, which also takes back the stream's
    records.
    """
    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    kept = _TablesKept()

    class CopyKeepingTables:
        """The `copy` module as moto's DynamoDB backend sees it."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if kept.active and isinstance(value, Table) else copy.deepcopy(value, memo)

    models.copy = CopyKeepingTables()  # type: ignore[assignment]
    transact_write_items = models.DynamoDBBackend.transact_write_items

    def item_copies(backend: Any, actions: list[dict[str, Any]]) -> list[tuple[Table, Any, Any, Any]] | None:
        copies = []
        for action in actions:
            for operation in action.values():
                table = backend.tables.get(operation.get("TableName"))
                if table is None:
                    continue
                if table.stream_shard is not None:
                    return None
                key = operation.get("Key") or operation.get("Item") or {}
                if table.hash_key_attr not in key or (table.range_key_attr and table.range_key_attr not in key):
                    continue
                hash_value = DynamoType(key[table.hash_key_attr])
                range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                current = table.get_item(hash_value, range_value)
                copies.append((table, hash_value, range_value, copy.deepcopy(current)))
        return copies

    def restore(copies: list[tuple[Table, Any, Any, Any]]) -> None:
        for table, hash_value, range_value, item in reversed(copies):
            items = table.items[hash_value] if range_value is not None else table.items
            key = range_value if range_value is not None else hash_value
            if item is None:
                items.pop(key, None)
            else:
                items[key] = item

    def transact_write_items_copying_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        copies = item_copies(self, transact_items)
        if copies is None:
            return transact_write_items(self, transact_items)
        kept.active = True
        try:
            return transact_write_items(self, transact_items)
        except Exception:
            restore(copies)
            raise
        finally:
            kept.active = False

    models.DynamoDBBackend.transact_write_items = transact_write_items_copying_items  # type: ignore[method-assign]
