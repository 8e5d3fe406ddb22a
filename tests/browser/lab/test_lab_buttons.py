"""The Training and Assets sidebars' buttons are JupyterLab's own: ``jp-Button`` with one of
Lab's kinds (``jp-mod-accept``, ``jp-mod-reject``, ``jp-mod-warn``, ``jp-mod-minimal``),
and they look like the buttons Lab itself draws with those classes (not the browser's grey
default).

Screenshots: ``tests/artifacts/lab-buttons-after-*.png`` (``NOTEBENCH_CHARTS_PHASE=before``
names them ``lab-buttons-before-*``: how the ones of the older look were taken).
"""

from __future__ import annotations

import os
from typing import Any

from tests.browser.chromium import screenshot
from tests.browser.lab.conftest import (
    TERMINAL,
    job_state,
    open_lab,
    our_errors,
    show_training,
    submit,
    wait_until,
)

PHASE = os.environ.get("NOTEBENCH_CHARTS_PHASE", "after")
KINDS = ("jp-mod-accept", "jp-mod-reject", "jp-mod-warn", "jp-mod-minimal")

# every button of a sidebar, its classes and computed look, next to the look Lab gives a
# button of the same kind (a probe button with only Lab's classes, removed again)
BUTTONS = """([selector, kinds]) => {
    const look = el => { const s = getComputedStyle(el);
        return {background: s.backgroundColor, color: s.color, font: s.fontFamily,
                border: s.borderTopStyle + ' ' + s.borderTopWidth}; };
    const reference = {};
    for (const kind of kinds) {
        const probe = document.createElement('button');
        probe.className = 'jp-Button jp-mod-styled ' + kind;
        document.getElementById('main').append(probe);
        reference[kind] = look(probe);
        probe.remove();
    }
    const plain = document.createElement('button');
    document.body.append(plain);
    const browser = look(plain);
    plain.remove();
    const panel = document.querySelector(selector);
    return {
        font: getComputedStyle(panel.querySelector('h2')).fontFamily,
        browser, reference,
        buttons: Array.from(panel.querySelectorAll('button')).map(b => ({
            text: b.textContent.trim(), classes: Array.from(b.classList), look: look(b),
            height: b.getBoundingClientRect().height }))
    }; }"""


def check_buttons(page: Any, selector: str, expected: set[str]) -> None:
    page.mouse.move(900, 500)  # off the buttons: a hovered one has Lab's hover colour
    found = page.evaluate(BUTTONS, [selector, list(KINDS)])
    buttons = found["buttons"]
    assert expected <= {b["text"] for b in buttons}, buttons
    for button in buttons:
        classes = set(button["classes"])
        assert "jp-Button" in classes and "jp-mod-styled" in classes, button
        kinds = classes & set(KINDS)
        assert len(kinds) == 1, button  # one of Lab's kinds
        kind = kinds.pop()
        assert button["look"]["font"] == found["font"], button  # Lab's UI font
        assert button["look"]["background"] == found["reference"][kind]["background"], button
        assert button["look"]["color"] == found["reference"][kind]["color"], button
        if kind != "jp-mod-minimal":
            assert button["look"]["background"] != found["browser"]["background"], button
        assert 20 <= button["height"] <= 32, button  # a sidebar's size


def test_sidebar_buttons_carry_jupyterlabs_button_classes(page, console, lab) -> None:
    open_lab(page, lab)
    show_training(page)
    job = submit(lab, steps=600, delay=0.2)
    row = f'.nb-job[data-job-id="{job["id"]}"]'
    try:
        page.wait_for_selector(f"{row} .nb-action-pause", timeout=60_000)
        screenshot(page, f"lab-buttons-{PHASE}-training")
        check_buttons(page, "#notebench-training", {"Pause", "Stop", "Clone", "Compare",
                                                    "System"})
        page.click(f"{row} .nb-action-pause")
        page.wait_for_selector(f"{row} .nb-action-resume", timeout=30_000)
        check_buttons(page, "#notebench-training", {"Resume", "Stop"})
        page.evaluate("window.jupyterapp.shell.activateById('notebench-assets')")
        page.wait_for_selector("#notebench-assets .nb-dropzone button", timeout=30_000)
        screenshot(page, f"lab-buttons-{PHASE}-assets")
        check_buttons(page, "#notebench-assets", {"Choose…"})
    finally:
        lab.request("POST", f"lifecycle/jobs/{job['id']}/control", {"action": "stop"})
    wait_until(lambda: job_state(lab, job["id"])["state"] in TERMINAL, 60, "job stopped")
    assert not our_errors(console)
