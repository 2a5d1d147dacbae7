"""A loopback stand-in for Runware's REST API and its P-Image Upscale model.

This is NOT the AI model. It speaks the subset of Runware's REST API that the pipeline uses and
really resizes images, but with classical resampling (Pillow LANCZOS): outputs have the size,
format and envelope the real service would give, and no invented detail. It lets the whole
pipeline, its tests and its fault scenarios run on one machine without a Runware key. It binds
an IPv4 loopback address only.

Where each behaviour lives
    server.py        the HTTP surface (werkzeug, ../loopback_http.py): API, images, /_emulator admin
    api.py           one API request: checks in order, task dispatch, getResponse, getTaskDetails
    validation.py    an upscale task checked field by field, Runware's defaults filled in
    errors.py        Runware's error objects and ERROR_CODES, the one registry of codes it emits
    protocol.py      model id, allowed field values, statuses, a response as bytes
    tasks.py         task records and their lifecycle (processing -> success | error)
    processing.py    running one task: latency, render, upload, outcome, webhook hand-off
    inputs.py        the input image: http(s) URL, data URI, base64 or an earlier imageUUID
    images.py        decode, resize to the target megapixels, classical filters, encode
    pricing.py       the ``cost`` of a task: the model page's price per image, by tier
    image_store.py   outputType URL results, kept for their ttl
    delivery.py      the PUT to uploadEndpoint and webhook POSTs with retries
    faults.py        FaultConfig: every knob, its CLI flag and env variable
    fault_state.py   the knobs in force and the seeded draws made from them
    rate_limit.py    the token bucket behind rate_limit_per_second
    hostile.py       the non-contract items of getresponse_junk_items
    activity.py      counters and the work in flight (``wait_idle``)
    emulator.py      RunwareEmulator: builds the parts, starts and stops them
    cli.py           ``python -m local.runware_emulator``

Tasks
    upscale          model ``prunaai:p-image@upscale``; validated, then processed inline
                     (deliveryMethod sync) or acknowledged at once and queued on a worker pool
                     (async). Required are the fields the model page marks required (taskUUID,
                     model, inputs.image); without ``targetMegapixels`` (optional, no documented
                     default) the output keeps the input's whole megapixels, 1..8. Unknown fields
                     are ignored; ``null`` counts as absent for optional fields. Only the first
                     invalid field of a task is reported. With ``api_key`` set (the local stack
                     sets its own), any other Bearer key is refused: 401 invalidApiKey.
    getResponse      ``status`` processing | success (with the result); a failed or unknown task
                     comes back (HTTP 200: the poll itself worked) as a top-level ``errors`` item
                     beside ``data: []``, or with getresponse_error_shape "nested" as a ``data``
                     item with ``status: error`` and an ``error`` object. An unknown task, or
                     one finished longer ago than forget_after_seconds, is taskFailedOrNotFound.
    getTaskDetails   ``request`` (the task as it was sent) and ``response`` (its envelope).

Every answer's shape comes from the Runware contract (tests/contract/runware/), and the codes
from ``errors.ERROR_CODES``; the 5xx and HTTP-level answers (no route, wrong method) are plain
text, since Runware documents no body for them.

Processing an upscale task
    1. input: an http(s) URL (GET), a data URI, base64, or the imageUUID of an earlier result;
       turned upright by its EXIF orientation. Grey stays grey and 16-bit grey stays 16-bit.
    2. resize: 1 MP = 1,000,000 px, target = min(targetMegapixels, 8) MP, aspect kept,
       scale = sqrt(target / (w * h)), Pillow LANCZOS; larger inputs are scaled down alike.
    3. classical filters, visible on purpose:
         settings.enhanceDetails  ImageFilter.UnsharpMask(radius=2, percent=120, threshold=3)
         settings.realism         ImageEnhance.Color(1.08), then ImageEnhance.Contrast(1.04)
    4. encode: JPG (alpha flattened on white), PNG (16-bit grey kept) or WEBP (alpha kept),
       quality=outputQuality; 16-bit grey is scaled to 8 bits for JPG and WEBP.
    5. uploadEndpoint: HTTP PUT of the raw bytes, with no Content-Type unless a knob sets one. A
       PUT that fails (a refused or expired URL, a connection error) ends the task with
       ``uploadFailed`` (the SDKs' code), scoped to the task, with the documented error fields
       only: no imageURL. Success results with outputType URL carry ``imageURL`` (documented for
       results); whether Runware keeps doing so beside an uploadEndpoint is not documented, and
       ``image_url_with_upload`` false leaves it out.
    6. webhookURL: POST of the result (or error), retried with exponential backoff on non-2xx.
    ``cost`` (includeCost): the model page's price per image, by tier (pricing.py): 0.005 USD for
    1-4 MP, 0.01 USD for 5-8 MP.

Fault knobs: see ``faults.FaultConfig`` (``python -m local.runware_emulator --help`` lists them).
"""

from local.runware_emulator.cli import CommandLine, build_arg_parser, main, parse_command_line
from local.runware_emulator.emulator import RunwareEmulator
from local.runware_emulator.errors import ApiError
from local.runware_emulator.faults import FaultConfig, fault_cli_flag, fault_env_var
from local.runware_emulator.images import decode_image, encode_image, target_dimensions, upscale_image
from local.runware_emulator.protocol import MODEL_ID
from local.runware_emulator.tasks import TaskRecord
from local.runware_emulator.validation import UpscaleRequest, validate_upscale

__all__ = [
    "MODEL_ID",
    "ApiError",
    "CommandLine",
    "FaultConfig",
    "RunwareEmulator",
    "TaskRecord",
    "UpscaleRequest",
    "build_arg_parser",
    "decode_image",
    "encode_image",
    "fault_cli_flag",
    "fault_env_var",
    "main",
    "parse_command_line",
    "target_dimensions",
    "upscale_image",
    "validate_upscale",
]
