"""A real Dask cluster for the jobs' Dask executor: a scheduler and two worker processes.

No job directory is shared with the server (each worker has a local directory of its
own). One worker advertises a ``GPU`` resource and names a fake device in its
``CUDA_VISIBLE_DEVICES`` (this machine has none), so placement by resource and pinning by
UUID are tested; the other advertises ``CPU=2``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.dask_cluster import (
    CPU_WORKER,
    FAKE_GPU,
    GPU_WORKER,
    DaskCluster,
    start_test_cluster,
)
from tests.integration.jobs.conftest import jobs_api, notebook, write_notebook  # noqa: F401

__all__ = ["CPU_WORKER", "FAKE_GPU", "GPU_WORKER", "DaskCluster"]


@pytest.fixture
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """A scheduler and two workers (``CPU=2``; ``GPU=1``), stopped after the test."""
    cluster = start_test_cluster(tmp_path_factory.mktemp("dask"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def dask_config(dask_cluster: DaskCluster) -> dict[str, Any]:
    """``c.NotebenchDaskCluster`` for the test server."""
    # files over 16 KiB (output notebooks, checkpoints) take the resumable upload protocol
    return {"scheduler_address": dask_cluster.address, "heartbeat_seconds": 0.5,
            "grace_seconds": 30.0, "lost_after_seconds": 10.0,
            "upload_threshold_bytes": 16 << 10}


@pytest.fixture
def jobs_config() -> dict[str, Any]:
    return {"executor_class": "notebench.server.jobs.dask_executor.DaskExecutor",
            "stop_grace_seconds": 10.0, "kill_grace_seconds": 3.0, "tick_seconds": 0.2,
            "stall_minutes": 0.0}


@pytest.fixture
def jp_server_config(notebench_config: dict[str, Any], jobs_config: dict[str, Any],
                     dask_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"notebench.server": True}},
        "NotebenchApp": notebench_config,
        "NotebenchJobService": jobs_config,
        "NotebenchDaskCluster": dask_config,
    }
