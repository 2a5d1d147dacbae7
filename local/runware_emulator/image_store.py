"""Results made with outputType URL, kept in memory for their ttl and served under /images/."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from local.runware_emulator.images import RenderedImage


@dataclass(frozen=True)
class StoredImage:
    data: bytes
    extension: str
    content_type: str
    expires_at: float


class ImageStore:
    """imageUUID -> bytes until ``ttl`` passes (default ``default_ttl_seconds``); oldest evicted first."""

    def __init__(self, clock: Callable[[], float], default_ttl_seconds: float, max_images: int) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._default_ttl = default_ttl_seconds
        self._max_images = max_images
        self._images: dict[str, StoredImage] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._images)

    def clear(self) -> None:
        with self._lock:
            self._images.clear()

    def put(self, image_uuid: str, rendered: RenderedImage, ttl_seconds: int | None) -> None:
        with self._lock:
            now = self._clock()
            for expired in [key for key, stored in self._images.items() if stored.expires_at <= now]:
                del self._images[expired]
            while len(self._images) >= self._max_images:
                del self._images[next(iter(self._images))]
            lifetime = ttl_seconds if ttl_seconds is not None else self._default_ttl
            self._images[image_uuid.lower()] = StoredImage(
                rendered.data, rendered.extension, rendered.content_type, now + lifetime
            )

    def get(self, image_uuid: str) -> StoredImage | None:
        """The image if it is still within its ttl."""
        key = image_uuid.lower()
        with self._lock:
            stored = self._images.get(key)
            if stored is not None and self._clock() >= stored.expires_at:
                del self._images[key]
                return None
            return stored
