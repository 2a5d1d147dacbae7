"""WebhookFunction: Runware's result POST (through the HTTP API) is verified and recorded.

It also answers the stack's deploy-time check of the upload presets, a CloudFormation custom
resource (upscaler.deploy_checks): CloudFormation invokes it directly; no HTTP request has that shape.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from upscaler.deploy_checks import answer_check, is_check_request
from upscaler.job_metrics import add_webhook_metrics
from upscaler.wiring import build_webhook_receiver

logger = Logger()
tracer = Tracer(patch_modules=["botocore"])  # its only outgoing calls; patching all costs cold start
metrics = Metrics()
app = APIGatewayHttpResolver()
receiver = build_webhook_receiver()


@app.post("/webhook")
def receive_result() -> Response:
    event = app.current_event
    query = event.query_string_parameters or {}
    reply = receiver.receive(query.get("job"), query.get("token"), _raw_body(event.body, event.is_base64_encoded))
    # At INFO, a job's one line is the submit function's. An accepted report is in the job record, the
    # completion event, the metrics and the API's access log: its line is DEBUG. A refused one stays INFO.
    log = logger.debug if reply.status_code < 300 else logger.info
    log("webhook answered", extra={"jobId": query.get("job"), "statusCode": reply.status_code})
    add_webhook_metrics(metrics, reply)
    return Response(reply.status_code, "application/json", json.dumps(reply.body))


def _raw_body(body: str | None, is_base64: bool) -> bytes:
    # Bytes, not text: Powertools' decoded_body raises on a base64 body that is not UTF-8 (a 500, not a 400).
    return base64.b64decode(body or "") if is_base64 else (body or "").encode()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_check_request(event):
        answer = answer_check(event)
        logger.info("deploy check answered", extra={"status": answer["Status"], "reason": answer.get("Reason")})
        return answer
    return app.resolve(event, context)
