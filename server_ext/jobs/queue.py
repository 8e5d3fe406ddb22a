"""Admission: which queued jobs start now, by free slots, priority, then age.

Slots: one per GPU (a GPU job is pinned to free GPUs by UUID) and a configurable number
on the CPU. Within a pool, jobs start strictly in order (higher ``priority`` first, then
the older one): a job that does not fit holds the jobs behind it in its pool back, so a
large job is never starved by a stream of small ones. GPU and CPU pools are independent.
On a cluster whose workers advertise ``CPU`` units, a CPU job asking for ``cpus`` also
needs that many free on one worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Waiting:
    """A queued job as the queue sees it."""

    job_id: str
    priority: int
    created: float
    seq: int
    gpus: int = 0  # how many GPUs (when ``gpu_uuids`` is empty)
    gpu_uuids: tuple[str, ...] = ()  # pinned GPUs
    cpus: int = 0  # CPUs asked for (0: none named)


@dataclass
class Slots:
    """What is free now."""

    cpu_free: int
    gpus_free: list[str] = field(default_factory=list)  # UUIDs in PCI bus order
    #: the most CPUs free on one machine, where CPUs are counted (a cluster whose workers
    #: advertise them); None: a CPU job needs only a free slot
    cpu_units: int | None = None


@dataclass(frozen=True)
class Admission:
    job_id: str
    gpu_uuids: tuple[str, ...] = ()


def order(waiting: list[Waiting]) -> list[Waiting]:
    """Priority (highest first), then age (oldest first)."""
    return sorted(waiting, key=lambda w: (-w.priority, w.created, w.seq))


def admit(waiting: list[Waiting], slots: Slots) -> list[Admission]:
    """The jobs to start now and the GPUs each gets."""
    admitted: list[Admission] = []
    cpu_free = slots.cpu_free
    cpu_units = slots.cpu_units
    gpus_free = list(slots.gpus_free)
    cpu_blocked = gpu_blocked = False
    for job in order(waiting):
        wants_gpu = bool(job.gpu_uuids) or job.gpus > 0
        if wants_gpu:
            if gpu_blocked:
                continue
            if job.gpu_uuids:
                if all(u in gpus_free for u in job.gpu_uuids):
                    chosen = tuple(job.gpu_uuids)
                else:
                    gpu_blocked = True
                    continue
            elif len(gpus_free) >= job.gpus:
                chosen = tuple(gpus_free[: job.gpus])
            else:
                gpu_blocked = True
                continue
            gpus_free = [u for u in gpus_free if u not in chosen]
            admitted.append(Admission(job.job_id, chosen))
        else:
            if cpu_blocked:
                continue
            if cpu_free <= 0 or (cpu_units is not None and job.cpus > cpu_units):
                cpu_blocked = True
                continue
            cpu_free -= 1
            if cpu_units is not None:
                cpu_units -= job.cpus  # it may land on the machine with the most free
            admitted.append(Admission(job.job_id))
    return admitted


def position(waiting: list[Waiting], job_id: str) -> int | None:
    """1-based place of a job in the queue order."""
    for index, job in enumerate(order(waiting), start=1):
        if job.job_id == job_id:
            return index
    return None


def waiting_of(row: dict[str, Any]) -> Waiting:
    """A queued job's row as the admission rules see it."""
    resources = row["resources"] or {}
    pinned = tuple(resources.get("gpu_uuids") or ())
    return Waiting(row["id"], int(row["priority"]), float(row["created"]),
                   int(row.get("seq") or 0), int(resources.get("gpus") or 0), pinned,
                   int(resources.get("cpus") or 0))
