"""The local stack's moto server, with the stack's changes to moto, in this process or one of its own.

moto keeps every service's state in module globals of the process that serves it, and the local
stack changes moto where the pipeline depends on AWS's behaviour (`install_local_moto_changes`):
atomic queue and table changes, S3 event fields, target dead-letter queues, message move tasks,
the per-request speedups, and no invoker of moto's own on a mapped queue (the stack's pollers are
the event source mapping). `MotoInProcess` serves from threads of the calling process, as the
stack always has: tests may reach moto's state there. `MotoServerProcess` serves from a child
process (spawned: no thread or lock of the parent is copied) that installs the same changes before
it answers its first request. The stack's own process then keeps only the Runware emulator, the
webhook gateway and the pollers, and moto's request handling no longer shares one interpreter lock
with them: with concurrent invocations in processes of their own (local.function_processes), the
moto server is the busiest part of the stack.

Both answer `call(function, *args)`: a function of the stack's moto changes run where moto runs
(the inbox bucket's KMS grant is applied that way once the bucket exists).
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import resource
from multiprocessing.connection import Connection
from typing import Any, Protocol

# The functions `call` may run where moto runs ("module:function"): the stack's own changes only.
CALLABLE = frozenset({"local.s3_encrypted_sources:refuse_ungranted_reads"})
START_TIMEOUT_SECONDS = 60.0


class MotoServer(Protocol):
    endpoint: str

    def call(self, function: str, *args: Any) -> Any: ...

    def cpu_seconds(self) -> float | None: ...

    def stop(self) -> None: ...


def install_local_moto_changes() -> None:
    """Every change the local stack makes to moto, in the process that serves it (each installs once)."""
    from local.event_dead_letters import install_target_dead_letter_queues
    from local.message_move import install_message_move_tasks
    from local.moto_atomic_queues import install_atomic_queue_changes
    from local.moto_atomic_tables import install_atomic_table_requests
    from local.moto_speedups import install_moto_speedups
    from local.s3_events import add_missing_event_fields

    add_missing_event_fields()
    install_message_move_tasks()
    install_moto_speedups()
    install_atomic_queue_changes()
    install_atomic_table_requests()
    install_target_dead_letter_queues()
    _no_moto_invokers()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


_invokers_removed = False


def _no_moto_invokers() -> None:
    """moto's Lambda hangs a mapping on its SQS queue (CreateEventSourceMapping), and moto's SQS then
    invokes the function itself (in a container) on every send; the stack's pollers are the mapping,
    so the hook is taken off as the mapping is made, in whichever process moto runs."""
    global _invokers_removed
    if _invokers_removed:
        return
    from moto.awslambda.models import LambdaBackend
    from moto.sqs.models import sqs_backends

    create = LambdaBackend.create_event_source_mapping

    def create_event_source_mapping(backend: Any, spec: dict[str, Any]) -> Any:
        mapping = create(backend, spec)
        for queue in sqs_backends[backend.account_id][backend.region_name].queues.values():
            if queue.queue_arn == spec.get("EventSourceArn"):
                queue.lambda_event_source_mappings.clear()
        return mapping

    LambdaBackend.create_event_source_mapping = create_event_source_mapping  # type: ignore[method-assign]
    _invokers_removed = True


def _resolve(function: str) -> Any:
    if function not in CALLABLE:
        raise ValueError(f"{function} is not one of the stack's moto changes")
    module, name = function.split(":")
    return getattr(importlib.import_module(module), name)


class MotoInProcess:
    """moto's ThreadedMotoServer in threads of this process."""

    def __init__(self, port: int = 0) -> None:
        from moto.server import ThreadedMotoServer

        install_local_moto_changes()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        host, bound = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{bound}"

    def call(self, function: str, *args: Any) -> Any:
        return _resolve(function)(*args)

    def cpu_seconds(self) -> float | None:
        return None  # shared with everything else this process runs

    def stop(self) -> None:
        self._server.stop()


class MotoServerProcess:
    """moto's ThreadedMotoServer in a child process, with the stack's changes installed there."""

    def __init__(self, port: int = 0) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, port), name="local-moto-server", daemon=True)
        self._process.start()
        child.close()
        if not self._connection.poll(START_TIMEOUT_SECONDS):
            self._process.kill()
            raise RuntimeError("the moto server process did not start")
        host, bound = self._answer()
        self.endpoint = f"http://{host}:{bound}"

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def call(self, function: str, *args: Any) -> Any:
        self._connection.send(("call", function, args))
        return self._answer()

    def cpu_seconds(self) -> float | None:
        """User and system CPU the moto server's process has used so far."""
        self._connection.send(("cpu", "", ()))
        return float(self._answer())

    def stop(self) -> None:
        if self._process.is_alive():
            try:
                self._connection.send(("stop", "", ()))
                self._process.join(timeout=10)
            except (BrokenPipeError, EOFError, OSError):
                pass
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        self._connection.close()

    def _answer(self) -> Any:
        kind, value = self._connection.recv()
        if kind == "error":
            raise RuntimeError(f"in the moto server process: {value}")
        return value


def _serve(connection: Connection, port: int) -> None:
    """The child: the changes, the server, then requests from the stack until it says stop (or goes)."""
    from moto.server import ThreadedMotoServer

    try:
        install_local_moto_changes()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
    except Exception as error:
        connection.send(("error", repr(error)))
        return
    connection.send(("ok", server.get_host_and_port()))
    parent = os.getppid()
    while True:
        try:
            if not connection.poll(1.0):
                if os.getppid() != parent:  # the stack's process is gone: so is its moto server
                    break
                continue
            kind, function, args = connection.recv()
        except (EOFError, OSError):
            break
        if kind == "stop":
            break
        try:
            if kind == "cpu":
                usage = resource.getrusage(resource.RUSAGE_SELF)
                connection.send(("ok", usage.ru_utime + usage.ru_stime))
            else:
                connection.send(("ok", _resolve(function)(*args)))
        except Exception as error:
            connection.send(("error", repr(error)))
    server.stop()
