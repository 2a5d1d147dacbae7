"""The pictures in README.md, made from the local stack: `make screenshots` (`python -m local.screenshots`).

docs/images/demo-page.png   the top of the page `python -m local demo` writes: the emulator's note and
                            the first sample, whole and as close-ups at the same scale
docs/images/cli-status.png  `s3-upscale --local status` after the demo's samples, as a terminal shows it

Both are taken by headless Chromium (Debian's `chromium` package) with a fresh profile and no
network of its own, then stored as PNG with 6 bits per colour channel (no dithering, so the picture
gains no texture it did not have) to stay small.
"""

from __future__ import annotations

import argparse
import fcntl
import io
import os
import pty
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
from pathlib import Path

from PIL import Image, ImageChops, ImageOps

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
DEMO_PAGE_WINDOW = (1050, 950)  # the note and the first sample of the demo page
TERMINAL_COLUMNS = 140


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise SystemExit("screenshots need Chromium: apt-get install chromium")
    return found


def screenshot(url: str, window: tuple[int, int], target: Path, work: Path) -> None:
    """A PNG of `url` in a window of `window` CSS pixels (device scale 1), taken with a fresh profile."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=work))
    result = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}",
         "--force-device-scale-factor=1", "--virtual-time-budget=5000", f"--screenshot={target}", url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if result.returncode != 0 or not target.is_file():
        raise SystemExit(f"chromium could not take {target.name}:\n{result.stderr}")


def store(shot: Path, target: Path, *, trim_background: bool = False) -> Path:
    """Save the shot as a compact PNG: 6 bits per channel, optionally cut to what differs from its corner."""
    with Image.open(shot) as image:
        picture = image.convert("RGB")
    if trim_background:
        background = Image.new("RGB", picture.size, picture.getpixel((0, 0)))  # type: ignore[arg-type]
        box = ImageChops.difference(picture, background).getbbox()
        if box is not None:
            margin = 16
            picture = picture.crop((
                max(0, box[0] - margin), max(0, box[1] - margin),
                min(picture.width, box[2] + margin), min(picture.height, box[3] + margin),
            ))  # fmt: skip
    target.parent.mkdir(parents=True, exist_ok=True)
    ImageOps.posterize(picture, 6).save(target, "PNG", optimize=True)
    return target


def demo_page(work: Path) -> Path:
    out = work / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "local", "demo", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"python -m local demo failed:\n{result.stdout}{result.stderr}")
    shot = work / "demo-page.png"
    screenshot((out / "index.html").as_uri(), DEMO_PAGE_WINDOW, shot, work)
    return store(shot, IMAGES / "demo-page.png")


def in_terminal(command: list[str], environment: dict[str, str]) -> str:
    """What `command` prints to a terminal TERMINAL_COLUMNS wide (a pseudo-terminal), colours included."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, TERMINAL_COLUMNS, 0, 0))
    process = subprocess.Popen(command, stdout=follower, stderr=follower, env=environment, cwd=ROOT)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes when the command exits
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    if process.wait(timeout=120) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{b''.join(chunks).decode(errors='replace')}")
    return b"".join(chunks).decode()


def terminal_page(prompt: str, output: str) -> str:
    """An HTML page that shows `prompt` and its output the way a dark terminal does."""
    from rich.console import Console
    from rich.terminal_theme import MONOKAI
    from rich.text import Text

    console = Console(record=True, width=TERMINAL_COLUMNS, file=io.StringIO(), force_terminal=True)
    console.print(Text("$ ", style="bold green") + Text(prompt, style="bold"))
    console.print(Text.from_ansi(output.replace("\r\n", "\n")))
    page = (  # str.format fills {code}, {foreground} and {background}: the style's own braces are doubled
        '<!doctype html><html><head><meta charset="utf-8"><style>'
        "body {{ margin: 0; background: {background}; }}"
        "pre {{ margin: 0; padding: 18px 22px; font: 14px/1.35 'DejaVu Sans Mono', monospace;"
        " color: {foreground}; background: {background}; }}"
        "</style></head><body><pre>{code}</pre></body></html>"
    )
    return console.export_html(theme=MONOKAI, inline_styles=True, code_format=page)


def cli_status(work: Path) -> Path:
    from local.samples import samples
    from local.stack import LocalStack, StackConfig
    from local.state_file import STATE_FILE_VARIABLE, write_state

    state_file = work / "state.json"
    os.environ[STATE_FILE_VARIABLE] = str(state_file)  # the stack below, not one `make up` may be running
    with LocalStack(StackConfig()) as stack:
        s3 = stack.client("s3")
        inbox, prefix = stack.names["inbox_bucket"], stack.names["inbox_prefix"]
        drops = samples()
        for sample in drops:
            s3.put_object(Bucket=inbox, Key=prefix + sample.name, Body=sample.body, Metadata=sample.metadata)
        for _ in stack.wait_for_jobs(len(drops), timeout=180):
            pass
        write_state(stack)
        environment = {**os.environ, "COLUMNS": str(TERMINAL_COLUMNS), "TERM": "xterm-256color"}
        environment.pop("NO_COLOR", None)
        output = in_terminal([str(Path(sys.executable).with_name("s3-upscale")), "--local", "status"], environment)
    state_file.unlink(missing_ok=True)
    page = work / "cli-status.html"
    page.write_text(terminal_page("s3-upscale --local status", output), encoding="utf-8")
    lines = output.count("\n") + 3
    shot = work / "cli-status.png"
    screenshot(page.as_uri(), (TERMINAL_COLUMNS * 9 + 60, lines * 19 + 60), shot, work)
    return store(shot, IMAGES / "cli-status.png", trim_background=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.screenshots", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="screenshots-") as work:
        for made in (demo_page(Path(work)), cli_status(Path(work))):
            with Image.open(made) as image:
                size = image.size
            print(f"{made.relative_to(ROOT)}: {size[0]}x{size[1]}, {made.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
