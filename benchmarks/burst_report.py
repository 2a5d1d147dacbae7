"""The burst section of the benchmark report (benchmarks/burst.py's figures)."""

from __future__ import annotations

from typing import Any

RUNWARE_REQUESTS_PER_IMAGE_GOAL = 0.15
RATE_LIMIT_RATIO_GOAL = 1.25


def burst_goals(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    goals = []
    direct = data["direct"]
    for design in ("queue", "queue, rate set"):
        queue = data.get(design)
        if queue is None:
            continue
        failed = queue["statuses"].get("FAILED", 0)
        ratio = queue["ratio_to_rate_limit"]
        clean = failed == 0 and queue["in_dlq"] == 0 and queue["not_finished"] == 0
        per_image = queue["runware_requests_per_image"]
        goals += [
            (
                f"Burst of {data['objects']} ({design}): 0 FAILED, 0 in the DLQ",
                f"{failed} FAILED, {queue['in_dlq']} in the DLQ, {queue['not_finished']} unfinished",
                "met" if clean else "not met",
            ),
            (
                f"Burst ({design}): Runware requests per image <= {RUNWARE_REQUESTS_PER_IMAGE_GOAL}",
                f"{per_image:.3f} (direct design: {direct['runware_requests_per_image']:.3f})",
                "met" if per_image <= RUNWARE_REQUESTS_PER_IMAGE_GOAL else "not met",
            ),
            (
                f"Burst ({design}): last job terminal within {RATE_LIMIT_RATIO_GOAL}x of the rate limit alone",
                f"{ratio:.2f}x ({queue['last_terminal_seconds']:.0f} s / {queue['rate_limit_alone_seconds']:.0f} s)"
                if ratio
                else "did not finish",
                "met" if ratio and ratio <= RATE_LIMIT_RATIO_GOAL else "not met",
            ),
        ]
    return goals


def _row(run: dict[str, Any]) -> list[str]:
    statuses = run["statuses"]
    last = run["last_terminal_seconds"]
    parameters = run["parameters"]
    return [
        f"{run['design']} (batch {parameters['SubmitBatchSize']}, window "
        f"{parameters['SubmitBatchingWindowSeconds']} s, concurrency {parameters['SubmitMaximumConcurrency']}"
        + (
            f", RunwareRequestsPerSecond {parameters['RunwareRequestsPerSecond']}"
            if "RunwareRequestsPerSecond" in parameters
            else ""
        )
        + ")",
        str(statuses.get("COMPLETED", 0)),
        str(statuses.get("FAILED", 0)),
        str(run["in_dlq"]),
        str(run["not_finished"]),
        str(run["runware_upscale_requests"]),
        f"{run['runware_requests_per_image']:.3f}",
        f"{last:.0f}" if last else "not all (stopped)",
        f"{run['rate_limit_alone_seconds']:.0f}",
        f"{run['submit_billed_ms_per_image']:.0f}",
        f"{run['submit_aws_calls_per_object']:.2f}",
        f"{run['mean_batch']:.1f}" if run["mean_batch"] else "-",
        str(run["peak_concurrency"]),
    ]


def burst_section(data: dict[str, Any]) -> list[str]:
    header = [
        "design",
        "completed",
        "FAILED",
        "in DLQ",
        "unfinished",
        "Runware requests",
        "requests per image",
        "last job terminal (s)",
        "rate limit alone (s)",
        "submit billed ms per image",
        "submit AWS calls per object",
        "mean batch",
        "peak concurrency",
    ]
    batch = int(data["queue"]["parameters"]["SubmitBatchSize"])
    lines = [
        "## 6. A burst of uploads against a rate-limited Runware",
        "",
        f"{data['objects']} uploads dropped at once (16 uploader threads) into the inbox of a fresh local stack, "
        f"with the Runware emulator answering 429 + Retry-After above {data['rate_per_second']:g} requests per "
        "second (a token bucket holding at most one second of requests, and at least one). That rate asks "
        f"for {data['rate_per_second'] * batch:g} images per second in batches of {batch}, below what the local stack "
        "(moto, the emulator and the functions in one process) serves unthrottled (section 5), so the time "
        "measured is the pacing's, not the stand-ins'. The queue design is "
        "the template's defaults, consumed by the local stack's event source mapping; each of its containers "
        "learns from the 429s it gets. 'Queue, rate set' is the same with RunwareRequestsPerSecond set to the "
        "emulator's rate, as an operator who knows the account's rate would; the direct design is what S3 "
        "invoking the function per object amounts to: "
        f"batches of one, no batching window, and {data['direct']['parameters']['SubmitMaximumConcurrency']} "
        "concurrent invocations standing in for no limit. The direct design was given the queue design's goal "
        f"as its wall budget ({data['direct_budget_seconds']:.0f} s) and stopped there. Runware requests count "
        "every upscale request, 429s included. 'Rate limit alone' is the time the limit needs for the "
        "design's requests (one per batch), with nothing else slowing them.",
        "",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += [
        "| " + " | ".join(_row(data[design])) + " |"
        for design in ("queue", "queue, rate set", "direct")
        if design in data
    ]
    lines += [
        "",
        "Submit's billed milliseconds are each invocation's wall time rounded up to the millisecond, summed "
        "and divided by the images. They are measured on one shared process with moto and the emulator, so "
        "they include waiting for the local stand-ins and for Retry-After; the AWS calls are counted on the "
        "submit function's own S3 and DynamoDB clients.",
        "",
    ]
    return lines
