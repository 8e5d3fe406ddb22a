"""``HardwarePanel``: the machine's profile, benchmark scores and recommended settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as w

from ..cli import format_value
from ..sse import Event
from .base import Panel
from .fmt import esc, human_bytes, table

__all__ = ["HardwarePanel"]


def _kv_table(pairs: list[tuple[str, Any]]) -> str:
    return table(["", ""], [[esc(k), esc(v)] for k, v in pairs], classes="nb-kv")


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested scores as ``("cpu.matmul_gflops", 12.3)`` pairs (lists left out)."""
    pairs: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            pairs += _flatten(value, f"{name}.")
        elif not isinstance(value, list):
            pairs.append((name, value))
    return pairs


class HardwarePanel(Panel):
    """Profile (CPU, memory, GPUs, torch), benchmark scores and recommendations."""

    title = "Hardware"

    def __init__(self, **kwargs: Any) -> None:
        self.profile: dict[str, Any] = {}
        self.recommendations: dict[str, Any] = {}
        self.benchmark: dict[str, Any] = {}
        super().__init__(**kwargs)

    def build(self) -> list[w.Widget]:
        self.profile_html = w.HTML()
        self.benchmark_html = w.HTML()
        self.recommend_html = w.HTML()
        self.run_benchmark = self.button("Run benchmark", self.start_benchmark)
        return [self.profile_html, self.heading(self.t("Benchmark")),
                w.HBox([self.benchmark_html, self.run_benchmark]),
                self.heading(self.t("Recommended settings")), self.recommend_html]

    def feed_topics(self) -> set[str]:
        return {"hardware"}

    def refresh(self) -> None:
        if self.client is None:
            return
        self.load(self.client.get("hardware"), self.client.get("hardware/recommendations"),
                  self.client.get("hardware/benchmark"))

    def load(self, profile: Mapping[str, Any], recommendations: Mapping[str, Any],
             benchmark: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            self.profile = dict(profile)
            self.recommendations = dict(recommendations)
            self.benchmark = dict(benchmark or {})
            self._draw()

    def on_events(self, events: list[Event]) -> None:
        with self._lock:
            for event in events:
                data = (event.data or {}).get("data")
                if event.event.startswith("benchmark.") and isinstance(data, dict):
                    self.benchmark = {**self.benchmark, **data,
                                      "state": event.event.split(".", 1)[1]}
            self._draw()

    def start_benchmark(self) -> None:
        if self.client is not None:
            self.benchmark = self.client.post("hardware/benchmark")
            self._draw()

    def _draw(self) -> None:
        p = self.profile
        cpu, mem = p.get("cpu") or {}, p.get("memory") or {}
        gpus = p.get("gpus") or []
        torch_info = p.get("torch") or {}
        rows = [("CPU", cpu.get("model") or "-"),
                ("Cores", f'{cpu.get("effective_cores", "-")} usable of '
                          f'{cpu.get("logical_cores", "-")}'),
                ("Memory", human_bytes(mem["effective_total_bytes"])
                 if isinstance(mem.get("effective_total_bytes"), (int, float)) else "-"),
                ("GPUs", ", ".join(str(g.get("name")) for g in gpus) or
                 (p.get("gpu_status") or {}).get("reason") or "none"),
                ("torch", torch_info.get("version") or ("not installed"
                                                        if torch_info.get("installed") is False
                                                        else "-"))]
        self.profile_html.value = _kv_table(rows)
        self.benchmark_html.value = self._benchmark_text()
        settings = self.recommendations.get("settings") or {}
        self.recommend_html.value = table(
            [esc(self.t("Name")), esc(self.t("Value")), ""],
            [[f"<code>{esc(k)}</code>", esc(format_value(k, v.get("value"))),
              f'<span class="nb-muted">{esc(v.get("reason"))}</span>']
             for k, v in settings.items() if isinstance(v, Mapping)], classes="nb-recommend")

    def _benchmark_text(self) -> str:
        b = self.benchmark
        state = b.get("state") or "none"
        scores = b.get("scores") or b.get("result") or {}
        if isinstance(scores, Mapping) and scores:
            return _kv_table([(k, format_value(k, v)) for k, v in _flatten(scores)][:16])
        if state in ("running", "started", "progress"):
            return f'<span class="nb-muted">running… {esc(b.get("fraction") or "")}</span>'
        return f'<span class="nb-muted">{esc("no benchmark yet" if state == "none" else state)}'\
               "</span>"
