"""Bad input is refused with a reason and never sent; odd but valid keys come out upscaled."""

from __future__ import annotations

import io

from PIL import Image

from local.stack import LocalStack
from tests.reliability.harness import (
    MAX_INPUT_BYTES,
    Drop,
    image_bytes,
    jobs_by_key,
    png_header,
    run_scenario,
    scaled,
)

SMALL = {"target-megapixels": "1"}


def gif_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (64, 48), 3).save(buffer, "GIF")
    return buffer.getvalue()


HEIC_HEADER = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64

# name -> (body, metadata, expected status, expected error code)
BAD_INPUT: dict[str, tuple[bytes, dict[str, str], str, str]] = {
    "notes.jpg": (b"meeting notes, definitely not a picture\n" * 20, {}, "REJECTED", "notAnImage"),
    "html.png": (b"<!doctype html><title>404</title>", {}, "REJECTED", "notAnImage"),
    "empty.png": (b"", {}, "REJECTED", "emptyObject"),
    "cut-in-header.jpg": (image_bytes(300, 200)[:40], {}, "REJECTED", "notAnImage"),
    # The header is intact, the pixels are not: only decoding can tell, so Runware fails the task
    # (the emulator names inputs.image with the contract's invalidParameter).
    "cut-in-pixels.jpg": (image_bytes(300, 200)[:-400], SMALL, "FAILED", "invalidParameter"),
    "huge-dimensions.png": (png_header(60000, 60000), {}, "REJECTED", "alreadyAtTarget"),
    "zero-width.png": (png_header(0, 500), {}, "REJECTED", "notAnImage"),
    "animation.gif": (gif_bytes(), {}, "REJECTED", "unsupportedFormat"),
    "IMG_0001.heic": (HEIC_HEADER, {}, "REJECTED", "unsupportedFormat"),
    "heic-named.jpg": (HEIC_HEADER, {}, "REJECTED", "unsupportedFormat"),
    "too-large.jpg": (image_bytes(200, 100) + b"\x00" * MAX_INPUT_BYTES, {}, "REJECTED", "objectTooLarge"),
    "target-9.jpg": (image_bytes(200, 100), {"target-megapixels": "9"}, "REJECTED", "invalidOverride"),
    "target-zero.jpg": (image_bytes(200, 100), {"target-megapixels": "0"}, "REJECTED", "invalidOverride"),
    "target-fraction.jpg": (image_bytes(200, 100), {"target-megapixels": "2.5"}, "REJECTED", "invalidOverride"),
    "target-word.jpg": (image_bytes(200, 100), {"target-megapixels": "four"}, "REJECTED", "invalidOverride"),
    "quality-5.jpg": (image_bytes(200, 100), {"output-quality": "5"}, "REJECTED", "invalidOverride"),
    "format-gif.jpg": (image_bytes(200, 100), {"output-format": "gif"}, "REJECTED", "invalidOverride"),
    "enhance-maybe.jpg": (image_bytes(200, 100), {"enhance-details": "maybe"}, "REJECTED", "invalidOverride"),
    "realism-2.jpg": (image_bytes(200, 100), {"realism": "2"}, "REJECTED", "invalidOverride"),
}


def test_bad_input_is_rejected_with_a_reason(stack: LocalStack) -> None:
    prefix = "rel-bad-input/"
    drops = [Drop(name, body, metadata) for name, (body, metadata, _, _) in BAD_INPUT.items()]

    row, dropped = run_scenario(stack, "bad input", prefix, drops)

    jobs = jobs_by_key(stack, prefix)
    outcomes = {item.key.removeprefix(stack.names["inbox_prefix"] + prefix): jobs[item.key] for item in dropped}
    wrong = {
        name: (job["status"], job.get("errorCode"), job.get("errorMessage"))
        for name, job in outcomes.items()
        if (job["status"], job.get("errorCode")) != BAD_INPUT[name][2:]
    }
    assert not wrong, wrong
    assert row.rejected == sum(1 for *_, status, _ in BAD_INPUT.values() if status == "REJECTED")


ODD_NAMES = [
    "with space.jpg",
    "two  spaces and trailing .jpg",
    "plus+sign.jpg",
    "a+b c.jpg",
    "percent%20not-a-space.jpg",
    "100%.jpg",
    "%2B.jpg",
    "ünïcödé/naïve café.jpg",
    "日本語/写真.jpg",
    "emoji 🎨🖼️.jpg",
    "quotes'and\"double.jpg",
    "symbols ~!@$&()=;,[]{}^`.jpg",
    "same-stem.jpg",
    "same-stem.png",
    "UPPER.JPG",
    "no-extension",
    "dots...jpg",
    "deep/" + "level/" * 40 + "file.jpg",
]


def odd_keys() -> list[str]:
    names = list(ODD_NAMES)
    # A key at S3's 1024-byte limit: the output key must still fit.
    names.append("long/" + "d" * (1024 - len("inbox/rel-odd-keys/long/") - len(".jpg")) + ".jpg")
    return names


def test_odd_keys_are_decoded_and_come_out_upscaled(stack: LocalStack) -> None:
    prefix = "rel-odd-keys/"
    names = odd_keys()
    assert len(stack.names["inbox_prefix"] + prefix + names[-1]) == 1024
    drops = [
        Drop(name, image_bytes(160, 100 + index, "PNG" if name.endswith(".png") else "JPEG", shade=index), SMALL)
        for index, name in enumerate(names)
    ]
    drops += [Drop(f"filler-{index}.jpg", image_bytes(120, 90, shade=index), SMALL) for index in range(scaled(0, 20))]

    row, dropped = run_scenario(stack, "odd keys (spaces, +, %, unicode, deep, 1024 bytes)", prefix, drops)

    assert row.completed == row.objects
    jobs = jobs_by_key(stack, prefix)
    assert {item.key for item in dropped} == set(jobs)
    output_keys = [job["outputKey"] for job in jobs.values()]
    assert len(set(output_keys)) == len(output_keys)
    for job in jobs.values():
        assert len(job["outputKey"].encode()) <= 1024, job["outputKey"]
