"""JupyterLab extension benchmark: Lab's page load with and without notebench, and its size.

    python tests/benchmarks/bench_labext.py [--rounds 7]

Two ``jupyter lab`` subprocesses of this environment run side by side: one as installed
(notebench's labextension enabled), one with ``disabledExtensions: {"notebench": true}`` in
its page config (the labextension's code is then never fetched; the server extension stays
on in both, so only the frontend differs). Each round loads each server's Lab page once in a
fresh browser context (cold cache), in alternating order, and records the milliseconds from
navigation start until ``jupyterapp.restored`` resolved (the layout is shown and every
plugin activated). Printed: the medians, their ratio (goal: within 10 %), and the bytes the
labextension adds to the wheel (its files deflated as in the wheel; goal < 500 KB).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import zipfile
from io import BytesIO
from pathlib import Path

from tests.benchmarks._common import log, machine_summary, median, print_table
from tests.browser.chromium import CHROMIUM, LAUNCH_ARGS
from tests.browser.lab.labserver import LABEXTENSION, LabServer, installed_labextension

LOAD_SCRIPT = """async () => {
    while (!window.jupyterapp) { await new Promise(r => setTimeout(r, 20)); }
    await window.jupyterapp.restored;
    return performance.now();
}"""


def wheel_bytes(folder: Path) -> int:
    """The labextension's files deflated, as a wheel stores them."""
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    with zipfile.ZipFile(buffer) as archive:
        return sum(info.compress_size for info in archive.infolist())


def start(base: Path, name: str, disabled: bool) -> LabServer:
    root = base / name / "root"
    root.mkdir(parents=True)
    config = base / name / "config"
    if disabled:
        (config / "labconfig").mkdir(parents=True)
        (config / "labconfig" / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {"notebench": True}}))
    return LabServer(root, config_dir=config).start()


def load_ms(browser, server: LabServer) -> tuple[float, bool]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(server.lab_url)
        elapsed = page.evaluate(LOAD_SCRIPT)
        has_panel = page.query_selector("#notebench-training") is not None
        return elapsed, has_panel
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    installed_labextension()
    from playwright.sync_api import sync_playwright

    log(machine_summary())
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        base = Path(tmp)
        servers = {"with notebench": start(base, "with", False),
                   "without notebench": start(base, "without", True)}
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            times: dict[str, list[float]] = {name: [] for name in servers}
            for server in servers.values():  # warm-up: server-side caches, disk
                load_ms(browser, server)
            for round_ in range(args.rounds):
                order = list(servers.items())
                if round_ % 2:
                    order.reverse()
                for name, server in order:
                    elapsed, has_panel = load_ms(browser, server)
                    assert has_panel == (name == "with notebench"), f"{name}: panel {has_panel}"
                    times[name].append(elapsed)
                log(f"round {round_ + 1}: " + ", ".join(
                    f"{n} {t[-1]:.0f} ms" for n, t in times.items()))
        finally:
            browser.close()
            for server in servers.values():
                server.stop()
    with_ms, without_ms = median(times["with notebench"]), median(times["without notebench"])
    print_table(["Lab page load", "median ms", "min ms", "max ms", "runs"], [
        [name, median(t), min(t), max(t), len(t)] for name, t in times.items()
    ], title="JupyterLab page load until restored (cold cache, Debian Chromium)")
    ratio = with_ms / without_ms
    verdict = "met" if ratio <= 1.10 else "NOT met"
    print(f"\nratio with / without: {ratio:.3f} (goal <= 1.10: {verdict})")
    size = wheel_bytes(LABEXTENSION)
    print(f"labextension in the wheel: {size / 1024:.1f} KiB deflated "
          f"({sum(p.stat().st_size for p in LABEXTENSION.rglob('*') if p.is_file()) / 1024:.1f} "
          f"KiB on disk; goal < 500 KB: {'met' if size < 500_000 else 'NOT met'})")


if __name__ == "__main__":
    main()
