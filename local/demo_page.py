"""out/index.html for `make demo`: each sample before and after, side by side, and each refusal with
its reason. Images are files copied next to the page, so it works opened straight from disk."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from upscaler.image_header import NeedMoreBytes, UnreadableImage, read_image_header

# Each <img> reports whether it decoded (naturalWidth > 0), so a headless browser's DOM dump shows
# whether every picture on the page really loads.
_MARK_LOADED = """
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  images.forEach((img) => { img.dataset.naturalWidth = String(img.naturalWidth); });
  const loaded = images.filter((img) => img.complete && img.naturalWidth > 0).length;
  document.body.dataset.imagesLoaded = loaded + "/" + images.length;
});
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; background: #fafafa; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin: 0 0 .5rem; }
.sample { background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 1rem; margin-bottom: 1.5rem; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
figure { margin: 0; } img { max-width: 100%; height: 260px; object-fit: contain; background: #eee;
  border: 1px solid #ccc; display: block; }
figcaption, .facts { font-size: .85rem; color: #555; margin-top: .3rem; }
table { border-collapse: collapse; background: #fff; } td, th { border: 1px solid #ddd; padding: .4rem .6rem;
  text-align: left; font-size: .9rem; } code { font-size: .85rem; }
.note { color: #8a5a00; }
"""


@dataclass(frozen=True)
class DemoEntry:
    name: str  # key below the inbox prefix
    note: str
    source: bytes
    job: dict[str, Any]
    output: Path | None  # the downloaded result, for a COMPLETED job


def write_demo_page(out_dir: Path, entries: list[DemoEntry], *, emulated: bool = True) -> Path:
    """Write out_dir/index.html (sources copied to out_dir/sources/); returns the page's path."""
    sources = out_dir / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    completed, refused = [], []
    for index, entry in enumerate(entries):
        if entry.job.get("status") == "COMPLETED" and entry.output is not None:
            source_file = sources / f"{index:02d}-{_safe(entry.name)}"
            source_file.write_bytes(entry.source)
            completed.append(_pair(entry, source_file.relative_to(out_dir), entry.output.relative_to(out_dir)))
        else:
            refused.append(entry)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>s3-upscale demo</title>',
        f"<style>{_STYLE}</style><script>{_MARK_LOADED}</script></head><body>",
        "<h1>s3-upscale demo: before and after</h1>",
    ]
    if emulated:
        parts.append(
            '<p class="note">Local run: the Runware emulator resizes with classical resampling; it is a '
            "stand-in for the API, not the AI model, and its costs are illustrative.</p>"
        )
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


def _pair(entry: DemoEntry, source: Path, output: Path) -> str:
    job = entry.job
    before = f"{_dimensions(job, 'input')}, {_bytes(len(entry.source))}, {_e(job.get('inputFormat', ''))}"
    after_bytes = job.get("outputSize") or (entry.output.stat().st_size if entry.output else 0)
    after = f"{_dimensions(job, 'output')}, {_bytes(int(after_bytes))}, {_e(_output_format(entry))}"
    cost = f"${Decimal(str(job['cost'])):.4f}" if job.get("cost") is not None else "-"
    seconds = f"{float(job['totalSeconds']):.1f} s" if job.get("totalSeconds") is not None else "-"
    return (
        f'<section class="sample"><h2>{_e(entry.name)}</h2>'
        f'<div class="facts">{_e(entry.note)} · cost {cost} · upload to result {seconds} · '
        f"target {_e(job.get('targetMegapixels', ''))} MP</div>"
        '<div class="pair">'
        f'<figure><img src="{_href(source)}" alt="before: {_e(entry.name)}"><figcaption>before: {before}'
        "</figcaption></figure>"
        f'<figure><img src="{_href(output)}" alt="after: {_e(entry.name)}"><figcaption>after: {after}'
        "</figcaption></figure></div></section>"
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
