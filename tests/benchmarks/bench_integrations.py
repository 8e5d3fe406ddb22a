"""Framework integrations benchmark: the per-call cost of their logging beside ``report()``.

    python tests/benchmarks/bench_integrations.py [--calls 100000] [--others 2000]
                                                  [--json PATH] [--strict]

Each logging call carries three scalars (loss, accuracy, lr) at a new step, written into a
job directory of a temporary folder as in a job:

* ``notebench.report()`` itself;
* ``NotebenchLogger.log_metrics`` (``notebench.integrations.lightning``), the call Lightning
  makes for every logged step;
* ``NotebenchCallback.on_log`` (``notebench.integrations.huggingface``), the call the
  ``transformers.Trainer`` makes for every log (its dict also holds ``epoch``);
* for comparison, TensorBoard's ``SummaryWriter.add_scalar`` x3 and MLflow's
  ``log_metrics`` (file store), measured by ``jobs_kernel_parts.py``.

A package that is not installed is reported as "not installed" and skipped (the bench venv
of ``make bench`` has them all). Goal: each integration under 20 us per logging call
(median). Exit status 0 unless ``--strict`` and a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.benchmarks._common import print_table  # noqa: E402
from tests.benchmarks.jobs_kernel_parts import (  # noqa: E402
    NOT_INSTALLED,
    _job_env,
    _mlflow_cost,
    _tensorboard_cost,
    _time_calls,
)

GOAL_US = 20.0


def _report_cost(n: int, folder: Path) -> dict[str, Any]:
    import notebench

    report = notebench.report
    with _job_env(folder / "report"):
        return _time_calls(lambda i: report(step=i, total_steps=n, loss=1.0 / (i + 1),
                                            accuracy=0.5, lr=1e-3), n)


def _lightning_cost(n: int, folder: Path) -> dict[str, Any]:
    try:
        from notebench.integrations.lightning import NotebenchLogger
    except ImportError:
        return {"status": NOT_INSTALLED}
    with _job_env(folder / "lightning"):
        logger = NotebenchLogger()
        logger.total_steps = n
        log = logger.log_metrics
        return _time_calls(lambda i: log({"loss": 1.0 / (i + 1), "accuracy": 0.5, "lr": 1e-3},
                                         i), n)


def _huggingface_cost(n: int, folder: Path) -> dict[str, Any]:
    try:
        from transformers import TrainerControl, TrainerState

        from notebench.integrations.huggingface import NotebenchCallback
    except ImportError:
        return {"status": NOT_INSTALLED}
    with _job_env(folder / "huggingface"):
        callback, state, control = NotebenchCallback(), TrainerState(), TrainerControl()
        state.max_steps = n
        on_log = callback.on_log

        def call(i: int) -> None:
            state.global_step = i
            on_log(None, state, control,
                   logs={"loss": 1.0 / (i + 1), "accuracy": 0.5, "lr": 1e-3, "epoch": i / n})

        return _time_calls(call, n)


def measure(calls: int, others: int) -> dict[str, Any]:
    """Every cost, side by side, and the goals."""
    with tempfile.TemporaryDirectory(prefix="nb-bench-integrations-") as tmp:
        folder = Path(tmp)
        result: dict[str, Any] = {
            "notebench_report": _report_cost(calls, folder),
            "lightning_logger_log_metrics": _lightning_cost(calls, folder),
            "huggingface_callback_on_log": _huggingface_cost(calls, folder),
            "tensorboard_add_scalar_x3": _tensorboard_cost(others, folder),
            "mlflow_log_metrics_file": _mlflow_cost(min(others, 300),
                                                    (folder / "mlruns").as_uri()),
        }
    result["goals"] = {f"{name}_median_lt_{GOAL_US:g}us": result[name]["median_us"] < GOAL_US
                       for name in ("lightning_logger_log_metrics", "huggingface_callback_on_log")
                       if "median_us" in result[name]}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000, help="calls of ours, per kind")
    parser.add_argument("--others", type=int, default=2_000,
                        help="calls of TensorBoard (MLflow: at most 300)")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    result = measure(args.calls, args.others)
    rows = []
    for name, cost in result.items():
        if name == "goals":
            continue
        if "median_us" in cost:
            rows.append([name, cost["calls"], cost["median_us"], cost["p99_us"], cost["mean_us"]])
        else:
            rows.append([name, "-", cost["status"], "-", "-"])
    print_table(["per logging call (3 scalars)", "calls", "median us", "p99 us", "mean us"],
                rows, title="Framework integrations: logging cost beside report()")
    for goal, met in result["goals"].items():
        print(f"goal {goal}: {'met' if met else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 1 if args.strict and not all(result["goals"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
