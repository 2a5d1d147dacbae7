"""RunwareEmulator: builds the parts, starts and stops them, and shows their state to tests and the admin API."""

from __future__ import annotations

import functools
import ipaddress
import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import certifi
import httpx

from local.loopback_http import LoopbackServer, wsgi_app
from local.runware_emulator.activity import Activity, Counters
from local.runware_emulator.api import ApiHandler
from local.runware_emulator.delivery import Uploader, WebhookSender
from local.runware_emulator.fault_state import FaultState
from local.runware_emulator.faults import FaultConfig
from local.runware_emulator.image_store import ImageStore
from local.runware_emulator.inputs import InputLoader
from local.runware_emulator.processing import TaskRunner
from local.runware_emulator.server import EmulatorRoutes
from local.runware_emulator.tasks import TaskRecord, TaskStore

logger = logging.getLogger(__name__)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~20 ms; one context serves every emulator in the process.
    return ssl.create_default_context(cafile=certifi.where())


def loopback_host(host: str) -> str:
    """``host`` if it is an IPv4 loopback address ("localhost" means 127.0.0.1), else ValueError."""
    candidate = "127.0.0.1" if host == "localhost" else host
    try:
        address = ipaddress.IPv4Address(candidate)
    except ValueError:
        raise ValueError(f"host must be an IPv4 loopback address, got {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"host must be an IPv4 loopback address, got {host!r}")
    return candidate


class RunwareEmulator:
    """Runware's REST API for the upscale model, on loopback, with injectable faults.

    ``clock`` (monotonic seconds) decides when stored images expire and refills the rate limit's
    bucket; tests pass a fake one. ``api_key``: the one Bearer key accepted (any other is answered
    401 invalidApiKey); None accepts any non-empty key.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        workers: int = 4,
        faults: FaultConfig | None = None,
        seed: int | None = None,
        *,
        webhook_workers: int = 8,
        fetch_timeout_seconds: float = 30.0,
        upload_timeout_seconds: float = 60.0,
        webhook_timeout_seconds: float = 10.0,
        default_image_ttl_seconds: float = 3600.0,
        max_stored_images: int = 256,
        clock: Callable[[], float] = time.monotonic,
        api_key: str | None = None,
    ) -> None:
        if workers < 1 or webhook_workers < 1:
            raise ValueError("workers and webhook_workers must be >= 1")
        self.host = loopback_host(host)
        self._requested_port = port
        self._stopping = threading.Event()
        self._server: LoopbackServer | None = None
        self._stopped = False
        # trust_env=False: a proxy from the environment must never carry loopback traffic.
        self._http = httpx.Client(trust_env=False, follow_redirects=True, verify=_tls_context())

        self.activity = Activity()
        self.counters = Counters()
        self.fault_state = FaultState(faults or FaultConfig(), seed, clock)
        self.task_store = TaskStore(clock)
        self.images = ImageStore(clock, default_image_ttl_seconds, max_stored_images)
        self.webhooks = WebhookSender(
            self._http,
            self.task_store,
            self.activity,
            self.counters,
            self._stopping,
            workers=webhook_workers,
            timeout_seconds=webhook_timeout_seconds,
        )
        self.runner = TaskRunner(
            tasks=self.task_store,
            inputs=InputLoader(self._http, self.images, fetch_timeout_seconds),
            images=self.images,
            uploader=Uploader(self._http, self.counters, upload_timeout_seconds),
            webhooks=self.webhooks,
            activity=self.activity,
            stopping=self._stopping,
            base_url=lambda: self.base_url,
            workers=workers,
        )
        self.api = ApiHandler(
            tasks=self.task_store,
            faults=self.fault_state,
            runner=self.runner,
            activity=self.activity,
            counters=self.counters,
            api_key=api_key,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> RunwareEmulator:
        if self._server is not None or self._stopped:
            raise RuntimeError("an emulator starts once")
        routes = EmulatorRoutes(
            api=self.api, images=self.images, faults=self.fault_state, stats=self.stats, reset=self.reset
        )
        self._server = LoopbackServer(self.host, self._requested_port, wsgi_app(routes), "runware-emulator-http")
        self.webhooks.start()
        self._server.start()
        logger.info("Runware emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        if self._server is not None:
            self._server.stop()
        self.webhooks.stop()
        self.runner.stop()
        self._http.close()
        self.activity.close()

    def __enter__(self) -> RunwareEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return self._server.port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The API endpoint, the stand-in for https://api.runware.ai/v1."""
        return f"{self.base_url}/v1"

    # -- state for tests and the admin API ---------------------------------------------------

    @property
    def faults(self) -> FaultConfig:
        """The knobs in force, with burst_429 showing what is left of the burst."""
        return self.fault_state.config

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        self.fault_state.replace(config)

    @property
    def tasks(self) -> dict[str, TaskRecord]:
        """taskUUID (lower case) -> record; a snapshot of the index, the records are live."""
        return self.task_store.all()

    @property
    def requests(self) -> list[Any]:
        """Every API request body in arrival order: parsed JSON, or the text if it was not JSON."""
        return self.api.requests

    def stats(self) -> dict[str, Any]:
        return {
            **self.counters.snapshot(),
            "tasks": self.task_store.count_by_status(),
            "images_stored": len(self.images),
            "burst_429_remaining": self.fault_state.burst_429_remaining,
            "busy": self.activity.busy,
        }

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Blocks until no task is queued or processing and no webhook is pending; False on timeout."""
        return self.activity.wait_idle(timeout)

    def reset(self) -> None:
        """Forgets tasks, requests, images and counters; keeps the faults (429 burst re-armed).

        Meant for an idle emulator: work still in flight finishes but sends no webhook.
        """
        self.activity.new_generation()
        self.webhooks.cancel_pending()
        self.task_store.clear()
        self.api.forget_requests()
        self.images.clear()
        self.counters.reset()
        self.fault_state.reset()
