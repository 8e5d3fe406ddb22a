"""Runs in and out of the tools people already use: MLflow and TensorBoard.

``export_mlflow`` (jobs as MLflow runs), ``export_tensorboard`` (a job's metrics as event
files) and ``import_tensorboard`` (TensorBoard runs as notebench runs); the ``notebench
export`` and ``notebench import`` commands (``interop.cli``). MLflow and tensorboard are
imported when a function needs them: ``pip install 'notebench[interop]'``.
"""

from __future__ import annotations

from .mlflow_export import export_mlflow
from .tensorboard_export import export_tensorboard
from .tensorboard_import import ImportedRun, import_tensorboard

__all__ = ["ImportedRun", "export_mlflow", "export_tensorboard", "import_tensorboard"]
