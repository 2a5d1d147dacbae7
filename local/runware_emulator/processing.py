"""Running one accepted upscale task: wait its latency, render, upload, record the outcome, send the webhook."""

from __future__ import annotations

import base64
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from local.runware_emulator.activity import Activity
from local.runware_emulator.delivery import Uploader, WebhookSender
from local.runware_emulator.errors import ApiError, image_error, inference_error, invalid
from local.runware_emulator.fault_state import TaskFate
from local.runware_emulator.image_store import ImageStore
from local.runware_emulator.images import RenderedImage, decode_image, encode_image, upscale_image
from local.runware_emulator.inputs import InputLoader
from local.runware_emulator.pricing import nearest_megapixels, task_cost
from local.runware_emulator.tasks import TaskRecord, TaskStore
from local.runware_emulator.validation import UpscaleRequest

logger = logging.getLogger(__name__)


class TaskRunner:
    """Processes upscale tasks inline (sync) or on a worker pool (async)."""

    def __init__(
        self,
        *,
        tasks: TaskStore,
        inputs: InputLoader,
        images: ImageStore,
        uploader: Uploader,
        webhooks: WebhookSender,
        activity: Activity,
        stopping: threading.Event,
        base_url: Callable[[], str],
        workers: int,
    ) -> None:
        self._tasks = tasks
        self._inputs = inputs
        self._images = images
        self._uploader = uploader
        self._webhooks = webhooks
        self._activity = activity
        self._stopping = stopping
        self._base_url = base_url
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runware-emulator-task")

    def queue(self, record: TaskRecord, request: UpscaleRequest, fate: TaskFate) -> None:
        """Runs the task on the pool; the caller has counted it as work in flight."""
        self._pool.submit(self.run, record, request, fate)

    def stop(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def run(self, record: TaskRecord, request: UpscaleRequest, fate: TaskFate) -> None:
        try:
            if fate.latency_seconds > 0 and self._stopping.wait(fate.latency_seconds):
                return
            self._process(record, request, fate)
        except Exception as unexpected:
            logger.exception("upscale task %s failed inside the emulator", record.task_uuid)
            self._tasks.complete_with_error(record, inference_error(f"Emulator error: {unexpected}"))
        finally:
            self._activity.end()

    def _process(self, record: TaskRecord, request: UpscaleRequest, fate: TaskFate) -> None:
        faults = fate.faults
        try:
            if fate.fail:
                raise ApiError(
                    faults.task_failure_code,
                    "The provider did not complete the task (injected fault).",
                    http_status=500,
                )
            rendered = self._render(request)
        except ApiError as error:
            self._tasks.complete_with_error(record, error)
            self._webhooks.send(record, request.webhook_url, fate)
            return
        result = self._build_result(request, rendered, faults.image_url_with_upload or not request.upload_endpoint)
        if "imageURL" in result:
            self._images.put(result["imageUUID"], rendered, request.ttl_seconds)

        if faults.webhook_before_upload and request.webhook_url:
            self._tasks.complete_with_success(record, result, rendered)
            self._webhooks.send(record, request.webhook_url, fate, inline=True)
            if request.upload_endpoint:
                upload_error = self._uploader.upload(request.upload_endpoint, rendered.data, faults.upload_content_type)
                if upload_error is not None:
                    # Retries still pending will now carry this error instead of the result.
                    self._tasks.complete_with_error(record, upload_error)
            return

        if request.upload_endpoint:
            upload_error = self._uploader.upload(request.upload_endpoint, rendered.data, faults.upload_content_type)
            if upload_error is not None:
                self._tasks.complete_with_error(record, upload_error)
                self._webhooks.send(record, request.webhook_url, fate)
                return
        self._tasks.complete_with_success(record, result, rendered)
        self._webhooks.send(record, request.webhook_url, fate)

    def _render(self, request: UpscaleRequest) -> RenderedImage:
        source = decode_image(self._inputs.load(request.image))
        target = request.target_megapixels or nearest_megapixels(source.width * source.height)
        try:
            upscaled = upscale_image(source, target, enhance_details=request.enhance_details, realism=request.realism)
        except (ValueError, OSError) as error:
            raise image_error(f"unsupported image ({error})") from None
        try:
            data = encode_image(upscaled, request.output_format, request.output_quality)
        except (ValueError, OSError) as error:
            reason = f"the output cannot be encoded as {request.output_format} ({error})"
            raise invalid("outputFormat", reason) from None
        return RenderedImage(data, upscaled.width, upscaled.height, request.output_format)

    def _build_result(self, request: UpscaleRequest, rendered: RenderedImage, with_url: bool) -> dict[str, Any]:
        """The documented result fields; `with_url` False leaves imageURL out (a task with an
        uploadEndpoint, where whether Runware returns it is not documented)."""
        image_uuid = str(uuid.uuid4())
        result: dict[str, Any] = {"taskType": "upscale", "taskUUID": request.task_uuid, "imageUUID": image_uuid}
        if request.output_type == "URL" and with_url:
            result["imageURL"] = f"{self._base_url()}/images/{image_uuid}.{rendered.extension}"
        elif request.output_type == "dataURI":
            encoded = base64.b64encode(rendered.data).decode("ascii")
            result["imageDataURI"] = f"data:{rendered.content_type};base64,{encoded}"
        else:
            result["imageBase64Data"] = base64.b64encode(rendered.data).decode("ascii")
        if request.include_cost:
            result["cost"] = task_cost(request.target_megapixels, rendered.width * rendered.height)
        return result
