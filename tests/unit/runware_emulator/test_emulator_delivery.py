"""Async delivery over real HTTP: acknowledgement, the upload PUT, getResponse, webhooks and their faults."""

from __future__ import annotations

from emulator_helpers import (
    Received,
    assert_error_shape,
    async_task,
    call,
    decoded,
    fast_faults,
    poll,
    statuses,
    upscale_task,
)

from local.runware_emulator import (
    FaultConfig,
)

# --------------------------------------------------------------------------------------------
# Async delivery


def test_async_acknowledges_then_puts_the_bytes_then_posts_an_envelope(emulator, client, peer, photo):
    task = async_task(peer, photo)
    response = call(client, emulator, [task])
    assert response.status_code == 200
    assert response.json() == {"data": [{"taskType": "upscale", "taskUUID": task["taskUUID"]}]}
    assert emulator.wait_idle(5)

    [upload] = peer.requests_to("PUT", "/outputs/photo.jpg")
    assert upload.target.endswith("?X-Amz-Signature=secret-signature")
    assert "content-type" not in upload.headers
    output = decoded(upload.body)
    assert output.format == "JPEG"
    assert abs(output.width * output.height - 1_000_000) <= 0.02 * 1_000_000

    [webhook] = peer.requests_to("POST", "/hooks/runware")
    assert webhook.target.endswith("?token=job-token")
    assert webhook.headers["content-type"] == "application/json"
    [result] = webhook.json()["data"]
    assert set(webhook.json()) == {"data"}
    assert result["taskUUID"] == task["taskUUID"]
    assert client.get(result["imageURL"]).content == upload.body
    assert upload.at <= webhook.at
    stats = emulator.stats()
    assert (stats["uploads"], stats["webhook_attempts"], stats["webhook_deliveries"]) == (1, 1, 1)


def test_the_bare_webhook_shape_posts_the_result_alone(emulator, client, peer, photo):
    emulator.faults = fast_faults(webhook_shape="bare")
    task = async_task(peer, photo)
    call(client, emulator, [task])
    assert emulator.wait_idle(5)
    [webhook] = peer.requests_to("POST", "/hooks/runware")
    body = webhook.json()
    assert body["taskUUID"] == task["taskUUID"]
    assert body["imageUUID"] == emulator.tasks[task["taskUUID"]].result["imageUUID"]
    assert "data" not in body


def test_upload_content_type_knob_sends_the_header(emulator, client, peer, photo):
    emulator.faults = fast_faults(upload_content_type="image/jpeg")
    call(client, emulator, [async_task(peer, photo)])
    assert emulator.wait_idle(5)
    [upload] = peer.requests_to("PUT", "/outputs/photo.jpg")
    assert upload.headers["content-type"] == "image/jpeg"


def test_get_response_reports_processing_then_success(emulator, client, peer, photo):
    emulator.faults = fast_faults(latency_seconds=0.4)
    task = async_task(peer, photo)
    call(client, emulator, [task])
    pending = poll(client, emulator, task["taskUUID"])
    assert pending.status_code == 200
    assert pending.json() == {"data": [{"taskType": "upscale", "taskUUID": task["taskUUID"], "status": "processing"}]}
    assert not emulator.wait_idle(0.05)

    assert emulator.wait_idle(5)
    [done] = poll(client, emulator, task["taskUUID"]).json()["data"]
    result = emulator.tasks[task["taskUUID"]].result
    assert done == {**result, "status": "success"}

    details = call(client, emulator, [{"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]}])
    [item] = details.json()["data"]
    assert item["request"] == task
    assert item["response"] == {"data": [result]}


def test_task_failure_knob_fails_async_tasks_after_acceptance(emulator, client, peer, photo):
    emulator.faults = fast_faults(task_failure_rate=1.0)
    task = async_task(peer, photo)
    assert call(client, emulator, [task]).status_code == 200
    assert emulator.wait_idle(5)

    [webhook] = peer.requests_to("POST", "/hooks/runware")
    [error] = webhook.json()["errors"]
    assert_error_shape(error)
    assert (error["code"], error["taskUUID"], error["taskType"]) == ("timeoutProvider", task["taskUUID"], "upscale")
    assert peer.requests_to("PUT", "/outputs/photo.jpg") == []

    polled = poll(client, emulator, task["taskUUID"])
    assert polled.status_code == 200
    assert polled.json()["data"] == []
    [reported] = polled.json()["errors"]
    assert (reported["code"], reported["taskUUID"]) == ("timeoutProvider", task["taskUUID"])

    sync = call(client, emulator, [upscale_task(photo)])
    assert sync.status_code == 200, "the failure knob only applies to async tasks"


def test_a_failed_upload_fails_the_task_without_leaking_the_signature(emulator, client, peer, photo):
    peer.responders["/outputs/photo.jpg"] = statuses(403)
    task = async_task(peer, photo)
    call(client, emulator, [task])
    assert emulator.wait_idle(5)
    [webhook] = peer.requests_to("POST", "/hooks/runware")
    [error] = webhook.json()["errors"]
    assert (error["code"], error["parameter"]) == ("uploadFailed", "uploadEndpoint")
    assert "HTTP 403" in error["message"]
    assert "secret-signature" not in error["message"]
    assert poll(client, emulator, task["taskUUID"]).json()["errors"][0]["code"] == "uploadFailed"
    assert "imageURL" not in error  # the documented error fields only


def test_results_beside_an_upload_endpoint_can_leave_out_image_url(emulator, client, peer, photo):
    emulator.faults = fast_faults(image_url_with_upload=False)
    task = async_task(peer, photo)
    call(client, emulator, [task])
    assert emulator.wait_idle(5)
    [webhook] = peer.requests_to("POST", "/hooks/runware")
    [result] = webhook.json()["data"]
    assert "imageURL" not in result and result["imageUUID"]
    assert emulator.stats()["images_stored"] == 0  # no copy kept to serve
    assert len(peer.requests_to("PUT", "/outputs/photo.jpg")) == 1


# --------------------------------------------------------------------------------------------
# Webhook faults


def test_a_dropped_webhook_is_never_sent_but_the_result_can_be_polled(emulator, client, peer, photo):
    emulator.faults = fast_faults(drop_webhook_rate=1.0)
    task = async_task(peer, photo)
    call(client, emulator, [task])
    assert emulator.wait_idle(5)
    assert peer.requests_to("POST", "/hooks/runware") == []
    assert len(peer.requests_to("PUT", "/outputs/photo.jpg")) == 1
    assert poll(client, emulator, task["taskUUID"]).json()["data"][0]["status"] == "success"
    assert emulator.stats()["webhooks_dropped"] == 1


def test_a_duplicated_webhook_is_delivered_twice(emulator, client, peer, photo):
    emulator.faults = fast_faults(duplicate_webhook_rate=1.0)
    call(client, emulator, [async_task(peer, photo)])
    assert emulator.wait_idle(5)
    first, second = peer.requests_to("POST", "/hooks/runware")
    assert first.body == second.body
    assert emulator.stats()["webhook_deliveries"] == 2


def test_a_webhook_is_retried_with_growing_delays_until_the_receiver_accepts(emulator, client, peer, photo):
    base = 0.05
    emulator.faults = FaultConfig(webhook_retry_base_seconds=base)
    peer.responders["/hooks/runware"] = statuses(500, 503, 200)
    task = async_task(peer, photo)
    call(client, emulator, [task])
    assert emulator.wait_idle(5)
    attempts = peer.requests_to("POST", "/hooks/runware")
    assert len(attempts) == 3
    assert attempts[1].at - attempts[0].at >= base
    assert attempts[2].at - attempts[1].at >= 2 * base
    stats = emulator.stats()
    assert (stats["webhook_attempts"], stats["webhook_failures"], stats["webhook_deliveries"]) == (3, 2, 1)
    assert emulator.tasks[task["taskUUID"]].webhook_attempts == 3


def test_a_webhook_is_abandoned_after_the_maximum_attempts(emulator, client, peer, photo):
    emulator.faults = fast_faults(webhook_max_attempts=3)
    peer.responders["/hooks/runware"] = statuses(500)
    call(client, emulator, [async_task(peer, photo)])
    assert emulator.wait_idle(5)
    assert len(peer.requests_to("POST", "/hooks/runware")) == 3
    stats = emulator.stats()
    assert (stats["webhooks_abandoned"], stats["webhook_deliveries"]) == (1, 0)


def test_webhook_before_upload_posts_first_and_the_retry_finds_the_output(emulator, client, peer, photo):
    emulator.faults = fast_faults(webhook_before_upload=True)

    def accept_once_output_exists(received: Received) -> int:
        return 200 if peer.requests_to("PUT", "/outputs/photo.jpg") else 409

    peer.responders["/hooks/runware"] = accept_once_output_exists
    call(client, emulator, [async_task(peer, photo)])
    assert emulator.wait_idle(5)
    order = [item.method for item in peer.received if item.method != "GET"]
    assert order == ["POST", "PUT", "POST"]
    early = peer.requests_to("POST", "/hooks/runware")[0].json()
    assert "imageUUID" in early["data"][0]


def test_webhook_delay_holds_back_the_first_attempt(emulator, client, peer, photo):
    emulator.faults = fast_faults(webhook_delay_seconds=0.3)
    call(client, emulator, [async_task(peer, photo)])
    assert emulator.wait_idle(5)
    [upload] = peer.requests_to("PUT", "/outputs/photo.jpg")
    [webhook] = peer.requests_to("POST", "/hooks/runware")
    assert webhook.at - upload.at >= 0.3
