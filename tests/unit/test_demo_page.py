"""local.demo_page: the before/after page of a demo run."""

from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image

from local.demo_page import CLOSE_UP_HEIGHT, CLOSE_UP_WIDTH, CloseUp, DemoEntry, close_up, write_demo_page


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def completed(out_dir: Path) -> DemoEntry:
    output = out_dir / "outputs" / "a.png"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(png(200, 100))
    job = {
        "status": "COMPLETED",
        "inputWidth": 100,
        "inputHeight": 50,
        "inputFormat": "PNG",
        "outputWidth": 200,
        "outputHeight": 100,
        "outputFormat": "JPG",  # what was asked; the page shows what the bytes are
        "cost": "0.0048",
        "totalSeconds": 12.34,
        "targetMegapixels": 2,
    }
    return DemoEntry("My Photos/<été>.png", "a note & more", png(100, 50), job, output)


def refused() -> DemoEntry:
    job = {"status": "REJECTED", "errorCode": "notAnImage", "errorMessage": "not a JPEG, PNG or WEBP <sic>"}
    return DemoEntry("docs/notes.jpg", "not an image", b"text", job, None)


def test_a_completed_job_shows_before_and_after_with_its_facts(tmp_path):
    page = write_demo_page(tmp_path, [completed(tmp_path)])
    text = page.read_text(encoding="utf-8")
    assert page == tmp_path / "index.html"
    [source] = (tmp_path / "sources").iterdir()
    assert source.name == "00-My_Photos_t_.png"  # a safe file name, with its index
    assert source.read_bytes() == png(100, 50)
    assert '<img src="sources/00-My_Photos_t_.png"' in text
    assert '<img src="outputs/a.png"' in text
    assert "<h2>My Photos/&lt;été&gt;.png</h2>" in text
    assert "a note &amp; more · cost $0.0048 · upload to result 12.3 s · target 2 MP" in text
    assert re.search(r"before: 100x50, \d+ B, PNG", text)
    assert re.search(r"after: 200x100, \d+ B, PNG", text)  # read from the output's bytes
    assert "Refused" not in text
    assert "Local run: these results come from the Runware emulator, not the AI model" in text
    assert "close-ups below show interpolation" in text  # says the local stand-in adds no detail


def test_the_close_ups_draw_source_and_result_at_the_same_size_and_place(tmp_path):
    entry = completed(tmp_path)
    text = write_demo_page(tmp_path, [entry]).read_text(encoding="utf-8")
    placed = re.findall(r'<img class="(source|result)" src="([^"]+)" style="([^"]+)"', text)
    assert [(kind, src) for kind, src, _ in placed] == [
        ("source", "sources/00-My_Photos_t_.png"),
        ("result", "outputs/a.png"),
    ]
    assert placed[0][2] == placed[1][2] == "width:200px;height:100px;left:-0px;top:-0px"  # the result's size
    assert ".crop img.source { image-rendering: pixelated; }" in text  # source pixels as blocks, not smoothed
    assert "each source pixel is a 2.0x2.0 block" in text
    assert 'alt="before, close-up: My Photos/&lt;été&gt;.png"' in text


def test_a_close_up_is_centred_on_its_focus_and_stays_inside_the_result():
    job = {"inputWidth": 600, "inputHeight": 400, "outputWidth": 2449, "outputHeight": 1633}
    middle = close_up(job, (0.5, 0.5))
    assert middle == CloseUp(
        round(2449 / 2 - CLOSE_UP_WIDTH / 2), round(1633 / 2 - CLOSE_UP_HEIGHT / 2), CLOSE_UP_WIDTH, CLOSE_UP_HEIGHT,
        2449 / 600,
    )  # fmt: skip
    corner = close_up(job, (1.0, 1.0))
    assert corner is not None and (corner.left, corner.top) == (2449 - CLOSE_UP_WIDTH, 1633 - CLOSE_UP_HEIGHT)
    small = close_up({"inputWidth": 10, "inputHeight": 5, "outputWidth": 100, "outputHeight": 50}, (0.9, 0.1))
    assert small == CloseUp(0, 0, 100, 50, 10.0)
    assert close_up({"inputWidth": 10, "inputHeight": 5}, (0.5, 0.5)) is None


def test_refused_and_unfinished_jobs_are_listed_with_their_reasons(tmp_path):
    unfinished = DemoEntry("slow.jpg", "", b"x", {}, None)
    text = write_demo_page(tmp_path, [refused(), unfinished], emulated=False).read_text(encoding="utf-8")
    assert "<h2>Refused</h2>" in text
    assert (
        "<tr><td>docs/notes.jpg</td><td>REJECTED</td><td><code>notAnImage</code> not a JPEG, PNG or WEBP &lt;sic&gt;"
        in text
    )
    assert "<tr><td>slow.jpg</td><td>no job</td>" in text
    assert "Runware emulator" not in text
    assert list((tmp_path / "sources").iterdir()) == []


def test_a_job_without_cost_or_timing_shows_dashes(tmp_path):
    entry = completed(tmp_path)
    job = {k: v for k, v in entry.job.items() if k not in ("cost", "totalSeconds", "outputWidth")}
    text = write_demo_page(tmp_path, [DemoEntry(entry.name, entry.note, entry.source, job, entry.output)]).read_text(
        encoding="utf-8"
    )
    assert "cost - · upload to result - ·" in text
    assert re.search(r"after: -, \d+ B, PNG", text)
    assert "Close-up" not in text  # without the result's sides there is no scale to show it at
