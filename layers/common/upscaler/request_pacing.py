"""How far apart one container sends its requests to Runware, learnt from the 429s it is answered.

Runware documents HTTP 429 (too many requests) but no rate, and several submit functions (up to the
ingestion queue's MaximumConcurrency) share one account's limit. A container that sends as soon as
it has a batch spends a refused request on every collision with its neighbours, and then keeps
colliding: each comes back together with the others after its Retry-After. So each container keeps
a spacing between the start of an accepted request and the next one, grown when a request sent
without waiting is refused and shrunk a little by each request accepted at the first try (additive
in spirit, like congestion control: slow to speed up, quick to back off). A container that was never
refused never waits; the spacing is the container's own, kept across warm invocations.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# A refused first try grows the spacing by a tenth (and to at least the Retry-After); an accepted
# first try shrinks it by 2.5%. Held steady, that is one first try refused in five (0.025 / (0.025 +
# 0.1)): enough tries to keep the account's rate used, few enough to keep refusals cheap. Replayed
# against a token bucket (tests/unit/test_request_pacing.py), shrinking by a hundredth left two
# containers at 0.25 requests/s needing up to 1.33x the time the rate allows: after an overshoot,
# a hundredth per request took too long to come back.
WIDEN = 1.1
NARROW = 0.975
SMALLEST_SPACING_SECONDS = 0.05  # below this the spacing is dropped: no throttling left to avoid
LARGEST_SPACING_SECONDS = 60.0


class RequestPacer:
    def __init__(self, least_spacing_seconds: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.least_spacing = least_spacing_seconds  # from a configured rate, never learnt below
        self.spacing = 0.0  # learnt
        self._last_accepted: float | None = None

    def wait_seconds(self) -> float:
        """How long to wait before a first try, so it goes no sooner than the spacing allows."""
        with self._lock:
            spacing = max(self.spacing, self.least_spacing)
            if not spacing or self._last_accepted is None:
                return 0.0
            return max(0.0, self._last_accepted + spacing - self._clock())

    def accepted(self, *, first_try: bool, sent_at: float | None = None) -> None:
        """A request that got through; `sent_at` (this pacer's clock) is when it left, which is when it
        took its turn at Runware, however long the answer then took."""
        with self._lock:
            self._last_accepted = self._clock() if sent_at is None else sent_at
            if first_try and self.spacing:
                self.spacing *= NARROW
                if self.spacing < SMALLEST_SPACING_SECONDS:
                    self.spacing = 0.0

    def refused(self, retry_after: float | None, *, first_try: bool) -> None:
        """A 429. Only a first try tells that the spacing is too short: a retry went when it was told to."""
        if not first_try:
            return
        with self._lock:
            # A configured spacing is not widened: a refusal under it means a turn was taken late (its
            # answer said to wait), and the next turn counts from the accepted one anyway.
            grown = max(self.spacing * WIDEN, retry_after or 0.0, SMALLEST_SPACING_SECONDS)
            self.spacing = min(LARGEST_SPACING_SECONDS, grown)
