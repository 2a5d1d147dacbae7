"""The Runware REST client against scripted HTTP answers: request shape, retries, pacing, permanent errors.

What the answers say is read by upscaler.runware_answers (tests/unit/test_runware_answers.py).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from tests.contract.runware_contract import Fixture, by_name
from upscaler.runware import RunwareClient, RunwareUnavailable
from upscaler.runware_answers import Accepted, Failed, TaskError

API_URL = "https://runware.example.test/v1"

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class ScriptedRunware:
    """An httpx transport that answers each request with the next scripted answer (the last one repeats)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer

    def bodies(self) -> list[list[dict]]:
        return [json.loads(request.content) for request in self.requests]


def ack(request: httpx.Request) -> httpx.Response:
    tasks = json.loads(request.content)
    return httpx.Response(200, json={"data": [{"taskType": t["taskType"], "taskUUID": t["taskUUID"]} for t in tasks]})


def make_client(script: ScriptedRunware, **options) -> tuple[RunwareClient, list[float]]:
    sleeps: list[float] = []
    client = RunwareClient(
        API_URL,
        lambda: "secret-key",
        http=httpx.Client(transport=httpx.MockTransport(script)),
        sleep=sleeps.append,
        rng=random.Random(7),
        **options,
    )
    return client, sleeps


def task(task_uuid: str | None = None) -> dict:
    return {"taskType": "upscale", "taskUUID": task_uuid or str(uuid.uuid4()), "model": "prunaai:p-image@upscale"}


# --- request shape ------------------------------------------------------------------------------


def test_one_post_with_a_json_array_and_a_bearer_key():
    script = ScriptedRunware(ack)
    client, _ = make_client(script)
    tasks = [task(), task()]
    response = client.send(tasks)
    [request] = script.requests
    assert request.method == "POST"
    assert str(request.url) == API_URL
    assert request.headers["authorization"] == "Bearer secret-key"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == tasks
    assert response.outcomes == {t["taskUUID"]: Accepted(t["taskUUID"]) for t in tasks}
    assert client.requests_sent == 1


def test_a_single_task_is_still_sent_as_an_array():
    script = ScriptedRunware(ack)
    client, _ = make_client(script)
    one = task()
    client.send([one])
    assert script.bodies() == [[one]]


def test_the_api_key_is_read_for_every_request():
    keys = iter(["first", "second"])
    script = ScriptedRunware(httpx.Response(503), ack)
    client = RunwareClient(
        API_URL, lambda: next(keys), http=httpx.Client(transport=httpx.MockTransport(script)), sleep=lambda _: None
    )
    client.send([task()])
    assert [r.headers["authorization"] for r in script.requests] == ["Bearer first", "Bearer second"]


def test_get_responses_polls_by_task_uuid():
    script = ScriptedRunware(ack)
    client, _ = make_client(script)
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    client.get_responses(ids)
    assert script.bodies() == [[{"taskType": "getResponse", "taskUUID": i} for i in ids]]


def test_get_responses_with_nothing_to_ask_sends_nothing():
    script = ScriptedRunware(ack)
    client, _ = make_client(script)
    assert client.get_responses([]).outcomes == {}
    assert script.requests == []


# --- retries ------------------------------------------------------------------------------------


def test_429_with_retry_after_then_success():
    script = ScriptedRunware(httpx.Response(429, headers={"Retry-After": "3"}, json={"errors": []}), ack)
    client, sleeps = make_client(script)
    one = task()
    response = client.send([one])
    assert len(script.requests) == 2
    assert len(sleeps) == 1 and sleeps[0] >= 3.0
    assert response.outcome(one["taskUUID"]) == Accepted(one["taskUUID"])
    assert response.status_code == 200


def test_retry_after_as_an_http_date():
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    script = ScriptedRunware(httpx.Response(429, headers={"Retry-After": later}), ack)
    client, sleeps = make_client(script)
    client.send([task()])
    assert 25 <= sleeps[0] <= 31


def test_unparseable_retry_after_falls_back_to_backoff():
    script = ScriptedRunware(httpx.Response(429, headers={"Retry-After": "soon"}), ack)
    client, sleeps = make_client(script, backoff_base_seconds=0.5)
    client.send([task()])
    assert 0 <= sleeps[0] <= 0.5


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_retried(status):
    script = ScriptedRunware(httpx.Response(status, text="upstream trouble"), httpx.Response(status), ack)
    client, sleeps = make_client(script)
    one = task()
    response = client.send([one])
    assert len(script.requests) == 3
    assert len(sleeps) == 2
    assert response.outcomes == {one["taskUUID"]: Accepted(one["taskUUID"])}


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
)
def test_transport_errors_are_retried(error):
    script = ScriptedRunware(error, ack)
    client, sleeps = make_client(script)
    one = task()
    assert client.send([one]).outcome(one["taskUUID"]) == Accepted(one["taskUUID"])
    assert len(script.requests) == 2
    assert len(sleeps) == 1


def test_backoff_is_exponential_with_full_jitter_and_a_cap():
    script = ScriptedRunware(httpx.Response(503))
    client, sleeps = make_client(script, max_attempts=8, backoff_base_seconds=1.0, backoff_max_seconds=5.0)
    with pytest.raises(RunwareUnavailable):
        client.send([task()])
    assert len(sleeps) == 7
    ceilings = [1, 2, 4, 5, 5, 5, 5]
    assert all(0 <= pause <= ceiling for pause, ceiling in zip(sleeps, ceilings, strict=True))
    assert len(set(sleeps)) == len(sleeps)  # jittered, not a fixed schedule


def test_backoff_is_reproducible_with_a_seeded_rng():
    runs = []
    for _ in range(2):
        client, sleeps = make_client(ScriptedRunware(httpx.Response(503)), max_attempts=4)
        with pytest.raises(RunwareUnavailable):
            client.send([task()])
        runs.append(sleeps)
    assert runs[0] == runs[1]


def test_attempts_are_bounded():
    script = ScriptedRunware(httpx.Response(503, text="busy"))
    client, sleeps = make_client(script, max_attempts=3)
    with pytest.raises(RunwareUnavailable, match="3 attempt") as caught:
        client.send([task()])
    assert "HTTP 503: busy" in str(caught.value)
    assert len(script.requests) == 3
    assert len(sleeps) == 2


def test_the_deadline_stops_retries():
    script = ScriptedRunware(httpx.Response(429, headers={"Retry-After": "30"}))
    client, sleeps = make_client(script, max_attempts=10)
    started = time.monotonic()
    with pytest.raises(RunwareUnavailable, match="1 attempt"):
        client.send([task()], deadline=time.monotonic() + 10)
    assert len(script.requests) == 1
    assert sleeps == []
    assert time.monotonic() - started < 1


def test_the_deadline_allows_retries_that_fit():
    script = ScriptedRunware(httpx.Response(503), httpx.Response(503), ack)
    client, sleeps = make_client(script, max_attempts=10, backoff_base_seconds=0.01)
    client.send([task()], deadline=time.monotonic() + 60)
    assert len(script.requests) == 3
    assert len(sleeps) == 2


# --- permanent errors ---------------------------------------------------------------------------


def test_400_is_answered_at_once_with_runwares_error():
    one = task()
    error = {
        "code": "invalidTargetMegapixels",
        "message": "Invalid value for targetMegapixels parameter.",
        "parameter": "targetMegapixels",
        "taskType": "upscale",
        "taskUUID": one["taskUUID"],
        "documentation": "https://runware.ai/docs/en/image-inference/upscale",
    }
    script = ScriptedRunware(httpx.Response(400, json={"errors": [error]}))
    client, sleeps = make_client(script)
    response = client.send([one])
    assert len(script.requests) == 1
    assert sleeps == []
    assert response.status_code == 400
    assert response.outcome(one["taskUUID"]) == Failed(
        TaskError(
            "invalidTargetMegapixels",
            "Invalid value for targetMegapixels parameter.",
            "targetMegapixels",
            one["taskUUID"],
            "upscale",
        )
    )


@pytest.mark.parametrize(
    ("status", "code"), [(401, "invalidApiKey"), (402, "insufficientCredits"), (403, "accessDenied")]
)
def test_account_refusals_are_not_retried_and_fail_no_task(status, code):
    script = ScriptedRunware(httpx.Response(status, json={"errors": [{"code": code, "message": f"{code} text"}]}))
    client, sleeps = make_client(script)
    tasks = [task(), task()]
    response = client.send(tasks)
    assert len(script.requests) == 1
    assert sleeps == []
    assert response.outcomes == {}
    assert response.account is not None and response.account.status_code == status
    assert (response.account.error.code, response.account.error.message) == (code, f"{code} text")


def test_a_404_is_answered_at_once():
    script = ScriptedRunware(httpx.Response(404, json={"errors": [{"code": "notFound", "message": "notFound text"}]}))
    client, sleeps = make_client(script)
    one = task()
    response = client.send([one])
    assert (len(script.requests), sleeps, response.account) == (1, [], None)
    assert isinstance(response.outcome(one["taskUUID"]), Failed)


# --- the contract's rate-limited answer -----------------------------------------------------------


def contract_client(*answers: Fixture, max_attempts: int = 3) -> tuple[RunwareClient, ScriptedRunware]:
    responses = [
        httpx.Response(
            fixture.http_status or 200,
            content=fixture.body_bytes(),
            headers={} if fixture.body is None else {"Content-Type": "application/json"},
        )
        for fixture in answers
    ]
    script = ScriptedRunware(*responses)
    client, _ = make_client(script, max_attempts=max_attempts)
    return client, script


def test_a_rate_limited_answer_is_retried_then_given_up():
    limited = by_name("rest/rate-limited-429")
    client, script = contract_client(limited, max_attempts=2)
    with pytest.raises(RunwareUnavailable, match="429"):
        client.send(list(limited.request or ()))
    assert len(script.requests) == 2


def test_a_rate_limited_answer_then_an_acknowledgement_is_accepted():
    acknowledged = by_name("rest/async-ack")
    client, script = contract_client(by_name("rest/rate-limited-429"), acknowledged)
    [sent] = acknowledged.request or ()
    assert client.send([sent]).outcomes == {sent["taskUUID"]: Accepted(sent["taskUUID"])}
    assert len(script.requests) == 2
