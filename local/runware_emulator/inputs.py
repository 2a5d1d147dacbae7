"""Where an upscale task's input comes from: an http(s) URL, a data URI, base64, or an earlier imageUUID."""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote_to_bytes

import httpx

from local.runware_emulator.errors import image_error, redacted
from local.runware_emulator.image_store import ImageStore

MAX_INPUT_IMAGE_BYTES = 64 * 1024 * 1024
_ANY_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


class InputLoader:
    def __init__(self, http: httpx.Client, images: ImageStore, fetch_timeout_seconds: float) -> None:
        self._http = http
        self._images = images
        self._fetch_timeout = fetch_timeout_seconds

    def load(self, image: str) -> bytes:
        """The input's bytes; raises ApiError invalidImage saying why they cannot be had."""
        lowered = image.lower()
        if lowered.startswith(("http://", "https://")):
            return self._fetch(image)
        if lowered.startswith("data:"):
            header, comma, encoded = image.partition(",")
            if not comma:
                raise image_error("the data URI has no comma")
            if header.lower().endswith(";base64"):
                return _decode_base64(encoded, "the data URI")
            return unquote_to_bytes(encoded)
        if _ANY_UUID.fullmatch(image):
            stored = self._images.get(image)
            if stored is None:
                raise image_error(f"unknown image UUID {image} (only results of this emulator are known)")
            return stored.data
        if "://" in image:
            raise image_error(f"unsupported URL scheme in {redacted(image)}")
        return _decode_base64(image, "the value")

    def _fetch(self, url: str) -> bytes:
        try:
            with self._http.stream("GET", url, timeout=self._fetch_timeout) as response:
                if response.status_code != 200:
                    raise image_error(f"GET {redacted(url)} answered HTTP {response.status_code}")
                chunks: list[bytes] = []
                received = 0
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    if received > MAX_INPUT_IMAGE_BYTES:
                        raise image_error(f"larger than {MAX_INPUT_IMAGE_BYTES} bytes")
                    chunks.append(chunk)
        except httpx.HTTPError as error:
            raise image_error(f"GET {redacted(url)} failed ({type(error).__name__}: {error})") from None
        return b"".join(chunks)


def _decode_base64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise image_error(f"{what} is neither an http(s) URL, a data URI, an image UUID nor valid base64") from None
