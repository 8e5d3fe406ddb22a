"""``HardwarePanel``: the machine's profile, benchmark scores, recommended settings and,
when jobs run on a cluster, its workers (``GET lifecycle/cluster``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as w

from ..cli import format_value
from ..client import ApiError
from ..jobprotocol import JOBS_TOPIC
from ..sse import Event
from .base import Panel
from .fmt import esc, human_bytes, table

__all__ = ["HardwarePanel", "cluster_html", "cluster_shown"]


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


def cluster_shown(cluster: Mapping[str, Any]) -> bool:
    """Whether there is a cluster to show: a remote executor, or a problem to tell."""
    return bool(cluster) and (cluster.get("executor") not in (None, "local")
                              or bool(cluster.get("problem")))


def _worker_label(worker: Mapping[str, Any]) -> str:
    """A worker's name (when it is not its address), else its host, else its address."""
    name, address = worker.get("name"), str(worker.get("address") or "")
    if name is not None and str(name) and str(name) != address:
        return str(name)
    return str(worker.get("host") or address)


def _resources(resources: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted((resources or {}).items())) or "-"


def cluster_html(cluster: Mapping[str, Any], t: Callable[[str], str]) -> str:
    """The cluster as HTML: executor, scheduler, queued tasks, the problem, a row per
    worker (name and host, threads, memory, resources, the jobs it runs, its tasks)."""
    pairs = [(t("Executor"), cluster.get("executor"))]
    if cluster.get("scheduler"):
        pairs.append((t("Scheduler"), cluster["scheduler"]))
    pairs.append((t("Queued tasks"), cluster.get("queued") or 0))
    parts = [_kv_table(pairs)]
    if cluster.get("problem"):
        parts.append(f'<div class="nb-error nb-cluster-problem">{esc(cluster["problem"])}</div>')
    workers = cluster.get("workers") or []
    if not workers:
        parts.append(f'<div class="nb-muted">{esc(t("No workers connected."))}</div>')
        return "".join(parts)
    rows = []
    for worker in workers:
        label, host = _worker_label(worker), worker.get("host")
        where = esc(label) + (f" ({esc(host)})" if host and host != label else "")
        memory = worker.get("memory_limit")
        rows.append([f'<span title="{esc(worker.get("address"))}">{where}</span>',
                     esc(worker.get("threads") if worker.get("threads") is not None else "-"),
                     esc(human_bytes(memory) if isinstance(memory, (int, float)) else "-"),
                     esc(_resources(worker.get("resources"))),
                     esc(", ".join(worker.get("jobs") or []) or "-"),
                     esc(worker.get("tasks", len(worker.get("jobs") or [])))])
    parts.append(table([esc(t(h)) for h in ("Worker", "Threads", "Memory", "Resources",
                                              "Jobs", "Dask tasks")],
                       rows, classes="nb-cluster-workers"))
    return "".join(parts)


class HardwarePanel(Panel):
    """Profile (CPU, memory, GPUs, torch), benchmark scores and recommendations; the
    cluster's workers when jobs run on one (re-read when a job changes state)."""

    title = "Hardware"

    def __init__(self, **kwargs: Any) -> None:
        self.profile: dict[str, Any] = {}
        self.recommendations: dict[str, Any] = {}
        self.benchmark: dict[str, Any] = {}
        self.cluster: dict[str, Any] = {}
        super().__init__(**kwargs)

    def build(self) -> list[w.Widget]:
        self.profile_html = w.HTML()
        self.benchmark_html = w.HTML()
        self.recommend_html = w.HTML()
        self.run_benchmark = self.button("Run benchmark", self.start_benchmark)
        self.cluster_html = w.HTML()
        self.cluster_box = w.VBox([self.heading(self.t("Cluster")), self.cluster_html],
                                  layout=w.Layout(display="none"))
        self.cluster_box.add_class("nb-cluster")
        return [self.profile_html, self.heading(self.t("Benchmark")),
                w.HBox([self.benchmark_html, self.run_benchmark]),
                self.heading(self.t("Recommended settings")), self.recommend_html,
                self.cluster_box]

    def feed_topics(self) -> set[str]:
        # a cluster's jobs start and end with the jobs' state events
        return {"hardware", JOBS_TOPIC} if cluster_shown(self.cluster) else {"hardware"}

    def refresh(self) -> None:
        if self.client is None:
            return
        self.load(self.client.get("hardware"), self.client.get("hardware/recommendations"),
                  self.client.get("hardware/benchmark"))
        self.load_cluster(self._read_cluster())

    def _read_cluster(self) -> dict[str, Any]:
        if self.client is None:
            return {}
        try:
            return self.client.get("lifecycle/cluster")
        except ApiError:  # a server without jobs (or an older one): nothing to show
            return {}

    def load_cluster(self, cluster: Mapping[str, Any]) -> None:
        """Show ``GET lifecycle/cluster``'s answer (hidden for the local executor)."""
        with self._lock:
            followed = self.feed_topics()
            self.cluster = dict(cluster)
            shown = cluster_shown(self.cluster)
            self.cluster_box.layout.display = "flex" if shown else "none"
            self.cluster_html.value = cluster_html(self.cluster, self.t) if shown else ""
        if self.feed is not None and self.feed_topics() != followed:
            self.feed.topics_changed()

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
        if self.client is not None and any(e.topic == JOBS_TOPIC and e.event == "state"
                                           for e in events):
            self.load_cluster(self._read_cluster())  # a job started or ended somewhere

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
