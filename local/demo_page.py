"""out/index.html for `make demo`: each sample before and after, and each refusal with its reason.

Each upscaled sample is shown twice: whole (both fitted into the same box, which hides how many more
pixels the result has) and as a close-up of the same area at the same scale, where one pixel of the
result is one pixel on screen and each pixel of the source is drawn as a block of its own colour
(no smoothing), so what the upscaler put between the source's pixels is what differs. Images are
files copied next to the page, so it works opened straight from disk.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from upscaler.image_header import NeedMoreBytes, UnreadableImage, read_image_header

CLOSE_UP_WIDTH, CLOSE_UP_HEIGHT = 420, 300  # screen pixels of each close-up, at most

# Each <img> reports whether it decoded (naturalWidth > 0) and the width it is drawn at, so a headless
# browser's DOM dump shows whether every picture loads and whether the close-ups share one scale.
_MARK_LOADED = """
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  images.forEach((img) => {
    img.dataset.naturalWidth = String(img.naturalWidth);
    img.dataset.drawnWidth = String(Math.round(img.getBoundingClientRect().width));
  });
  const loaded = images.filter((img) => img.complete && img.naturalWidth > 0).length;
  document.body.dataset.imagesLoaded = loaded + "/" + images.length;
});
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem 2rem; color: #222; background: #fafafa; max-width: 1000px; }
h1 { font-size: 1.4rem; margin-top: 0; } h2 { font-size: 1.1rem; margin: 0 0 .3rem; }
h3 { font-size: .95rem; margin: .9rem 0 .3rem; }
.sample { background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 1rem; margin-bottom: 1.5rem; }
.pair { display: flex; gap: 1rem; flex-wrap: wrap; }
figure { margin: 0; }
.whole img { width: 300px; height: 180px; object-fit: contain; background: #eee; border: 1px solid #ccc;
  display: block; }
.crop { position: relative; overflow: hidden; border: 1px solid #999; background: #eee; }
.crop img { position: absolute; max-width: none; }
.crop img.source { image-rendering: pixelated; }
figcaption, .facts, .explain { font-size: .85rem; color: #555; margin-top: .3rem; }
table { border-collapse: collapse; background: #fff; } td, th { border: 1px solid #ddd; padding: .4rem .6rem;
  text-align: left; font-size: .9rem; } code { font-size: .85rem; }
.note { color: #6b4500; background: #fff6df; border: 1px solid #f0d9a0; border-radius: 6px; padding: .6rem .8rem; }
"""

_EMULATED_NOTE = (
    '<p class="note"><b>Local run: these results come from the Runware emulator, not the AI model.</b> '
    "It stands in for Runware's API and makes each result by resizing the source with classical "
    "resampling (Pillow LANCZOS; with enhanceDetails also an unsharp mask, with realism a little more colour "
    "and contrast), so the close-ups below show interpolation: the source's detail spread smoothly over more "
    "pixels, and nothing new. Runware's P-Image Upscale model increases resolution with AI, "
    "which is where detail is added: with a deployed stack and a Runware key, the results in the output bucket "
    "are the model's. Costs shown here are illustrative.</p>"
)


@dataclass(frozen=True)
class DemoEntry:
    name: str  # key below the inbox prefix
    note: str
    source: bytes
    job: dict[str, Any]
    output: Path | None  # the downloaded result, for a COMPLETED job
    detail_focus: tuple[float, float] = (0.5, 0.5)  # centre of the close-up, as shares of width and height


@dataclass(frozen=True)
class CloseUp:
    """One area of the result, in the result's pixels; the source is drawn at the result's size."""

    left: int
    top: int
    width: int
    height: int
    scale: float  # result pixels per source pixel


def close_up(job: dict[str, Any], focus: tuple[float, float]) -> CloseUp | None:
    """The area around `focus`, clamped inside the result; None without both images' sides."""
    sides = [job.get(name) for name in ("inputWidth", "inputHeight", "outputWidth", "outputHeight")]
    if not all(sides):
        return None
    input_width, _, output_width, output_height = (int(side) for side in sides)  # type: ignore[arg-type]
    width, height = min(CLOSE_UP_WIDTH, output_width), min(CLOSE_UP_HEIGHT, output_height)
    left = round(focus[0] * output_width - width / 2)
    top = round(focus[1] * output_height - height / 2)
    left = max(0, min(left, output_width - width))
    top = max(0, min(top, output_height - height))
    return CloseUp(left, top, width, height, output_width / input_width)


def write_demo_page(out_dir: Path, entries: list[DemoEntry], *, emulated: bool = True) -> Path:
    """Write out_dir/index.html (sources copied to out_dir/sources/); returns the page's path."""
    sources = out_dir / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    completed, refused = [], []
    for index, entry in enumerate(entries):
        if entry.job.get("status") == "COMPLETED" and entry.output is not None:
            source_file = sources / f"{index:02d}-{_safe(entry.name)}"
            source_file.write_bytes(entry.source)
            completed.append(_sample(entry, source_file.relative_to(out_dir), entry.output.relative_to(out_dir)))
        else:
            refused.append(entry)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>s3-upscale demo</title>',
        f"<style>{_STYLE}</style><script>{_MARK_LOADED}</script></head><body>",
        "<h1>s3-upscale demo: before and after</h1>",
    ]
    if emulated:
        parts.append(_EMULATED_NOTE)
    parts.extend(completed)
    if refused:
        parts.append("<h2>Refused</h2><table><tr><th>source</th><th>status</th><th>reason</th></tr>")
        for entry in refused:
            job = entry.job
            reason = f"<code>{_e(job.get('errorCode', ''))}</code> {_e(job.get('errorMessage', ''))}"
            parts.append(
                f"<tr><td>{_e(entry.name)}</td><td>{_e(job.get('status', 'no job'))}</td><td>{reason}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    page = out_dir / "index.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    return page


def _sample(entry: DemoEntry, source: Path, output: Path) -> str:
    job = entry.job
    before = f"{_dimensions(job, 'input')}, {_bytes(len(entry.source))}, {_e(job.get('inputFormat', ''))}"
    after_bytes = job.get("outputSize") or (entry.output.stat().st_size if entry.output else 0)
    after = f"{_dimensions(job, 'output')}, {_bytes(int(after_bytes))}, {_e(_output_format(entry))}"
    cost = f"${Decimal(str(job['cost'])):.4f}" if job.get("cost") is not None else "-"
    seconds = f"{float(job['totalSeconds']):.1f} s" if job.get("totalSeconds") is not None else "-"
    name = _e(entry.name)
    parts = [
        f'<section class="sample"><h2>{name}</h2>',
        f'<div class="facts">{_e(entry.note)} · cost {cost} · upload to result {seconds} · '
        f"target {_e(job.get('targetMegapixels', ''))} MP</div>",
        "<h3>Whole picture</h3>",
        '<div class="pair whole">',
        f'<figure><img src="{_href(source)}" alt="before: {name}"><figcaption>before: {before}</figcaption></figure>',
        f'<figure><img src="{_href(output)}" alt="after: {name}"><figcaption>after: {after}</figcaption></figure>',
        "</div>",
    ]
    area = close_up(job, entry.detail_focus)
    if area is not None:
        parts.append(_close_ups(job, area, source, output, name))
    parts.append("</section>")
    return "".join(parts)


def _close_ups(job: dict[str, Any], area: CloseUp, source: Path, output: Path, name: str) -> str:
    width, height = int(job["outputWidth"]), int(job["outputHeight"])
    placed = f"width:{width}px;height:{height}px;left:-{area.left}px;top:-{area.top}px"
    frame = f"width:{area.width}px;height:{area.height}px"
    scale = f"{area.scale:.1f}"
    return (
        "<h3>Close-up, both at the same scale</h3>"
        f'<p class="explain">The same {area.width}x{area.height} area of the result, and of the source drawn at '
        f"the result's size: each source pixel is a {scale}x{scale} block, each result pixel one screen pixel.</p>"
        '<div class="pair">'
        f'<figure><div class="crop" style="{frame}"><img class="source" src="{_href(source)}" style="{placed}" '
        f'alt="before, close-up: {name}"></div><figcaption>before: source pixels shown {scale}x</figcaption></figure>'
        f'<figure><div class="crop" style="{frame}"><img class="result" src="{_href(output)}" style="{placed}" '
        f'alt="after, close-up: {name}"></div><figcaption>after: result pixels 1:1</figcaption></figure>'
        "</div>"
    )


def _output_format(entry: DemoEntry) -> str:
    """The format read from the result's own bytes, which is what the page shows."""
    if entry.output is None:
        return ""
    try:
        return read_image_header(entry.output.read_bytes()[:65536]).format
    except (UnreadableImage, NeedMoreBytes):
        return str(entry.job.get("outputFormat", ""))


def _dimensions(job: dict[str, Any], prefix: str) -> str:
    width, height = job.get(f"{prefix}Width"), job.get(f"{prefix}Height")
    return f"{int(width)}x{int(height)}" if width and height else "-"


def _bytes(count: int) -> str:
    return f"{count / 1024:.0f} KiB" if count >= 1024 else f"{count} B"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _href(path: Path) -> str:
    return html.escape(quote(path.as_posix()), quote=True)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
