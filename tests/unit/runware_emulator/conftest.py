"""Fixtures for the emulator tests: one emulator per module, reset per test, and a loopback peer."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from emulator_helpers import (
    Peer,
    fast_faults,
    png_bytes,
)

from local.runware_emulator import (
    RunwareEmulator,
)


@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[RunwareEmulator]:
    with RunwareEmulator(seed=1234, faults=fast_faults()) as emu:
        yield emu


@pytest.fixture
def emulator(shared_emulator: RunwareEmulator) -> RunwareEmulator:
    """The module's emulator, reset to default knobs: the admin reset is what isolates tests."""
    shared_emulator.faults = fast_faults()
    shared_emulator.reset()
    return shared_emulator


@pytest.fixture
def peer() -> Iterator[Peer]:
    server = Peer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as http:
        yield http


@pytest.fixture
def photo(peer: Peer) -> str:
    """A 400x300 PNG served by the peer; returns its URL."""
    peer.files["/inputs/photo.png"] = png_bytes()
    return peer.url("/inputs/photo.png")
