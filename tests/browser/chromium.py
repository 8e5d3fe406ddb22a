"""Debian's Chromium driven by Playwright: launch options, console capture, screenshots."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

# messages the pages print that are not ours: Voila's page asks a CDN for a font (no network
# here) and its bundled JupyterLab core prints version warnings
FOREIGN_CONSOLE_NOISE = ("fonts.googleapis", "Failed to load resource", "net::ERR_",
                         "cdn.jsdelivr", "unpkg.com")


def chromium_available() -> bool:
    return Path(CHROMIUM).exists() or shutil.which("chromium") is not None


@dataclass
class ConsoleLog:
    """Console messages and uncaught page errors of one page."""

    messages: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", lambda msg: self.messages.append((msg.type, msg.text)))
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))

    def errors(self, *, ignore: tuple[str, ...] = FOREIGN_CONSOLE_NOISE) -> list[str]:
        found = [text for kind, text in self.messages if kind == "error"]
        found += self.page_errors
        return [text for text in found if not any(noise in text for noise in ignore)]


def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    """Save a screenshot as tests/artifacts/<name>.png and fail if it is blank."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    assert_not_blank(path)
    return path


def assert_not_blank(path: Path) -> None:
    """A blank image has one colour (or nearly): demand real contrast and many colours."""
    from PIL import Image, ImageStat

    with Image.open(path) as image:
        grey = image.convert("L")
        low, high = grey.getextrema()
        spread = ImageStat.Stat(grey).stddev[0]
        colours = grey.getcolors(maxcolors=256 * 256)
    distinct = len(colours) if colours is not None else 256
    assert high - low > 64 and spread > 4 and distinct > 8, (
        f"{path.name} looks blank: range {low}-{high}, stddev {spread:.1f}, {distinct} tones")
