"""Choose a training batch size by measuring the real model.

On a CUDA GPU (``mode="memory"``): the largest batch whose training step fits in the
device's memory with a margin — doubling until a step fails with out-of-memory or is
predicted not to fit, then a binary search; like Lightning's finder, but bounded by a
number of trials and a time budget. Elsewhere (``mode="throughput"``): the batch where
training throughput (samples per second) stops improving.

A trial runs real training steps (forward, backward and, by default, an Adam step, whose
state counts in the memory measured) on batches built by repeating the rows of
``sample_batch``. The model's parameters and buffers (kept on the CPU meanwhile), its
gradients and its train/eval mode are restored afterwards.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

GIB = 1024**3


@dataclass
class Trial:
    """One measured batch size."""

    batch_size: int
    fits: bool
    samples_per_s: float | None = None
    step_s: float | None = None
    peak_memory_bytes: int | None = None
    error: str | None = None


@dataclass
class BatchSizeResult:
    """The chosen batch size, why, and every trial that led to it."""

    batch_size: int
    mode: str
    device: str
    reason: str
    elapsed_s: float
    trials: list[Trial] = field(default_factory=list)
    budget_bytes: int | None = None

    def __int__(self) -> int:
        return self.batch_size

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- batches ------------------------------------------------------------------------------


def _map(batch: Any, fn: Callable[[Any], Any]) -> Any:
    """Apply ``fn`` to every tensor of a tensor, tuple/list or dict of them."""
    if isinstance(batch, (tuple, list)):
        return type(batch)(_map(item, fn) for item in batch)
    if isinstance(batch, dict):
        return {key: _map(value, fn) for key, value in batch.items()}
    return fn(batch) if hasattr(batch, "index_select") else batch


def _rows(batch: Any) -> int:
    found: list[int] = []
    _map(batch, lambda t: found.append(int(t.shape[0])) or t)
    if not found:
        raise TypeError("sample_batch holds no tensor")
    return min(found)


def _default_loss(output: Any) -> Any:
    if hasattr(output, "loss") and output.loss is not None:  # Hugging Face style outputs
        return output.loss
    if isinstance(output, (tuple, list)):
        output = output[0]
    if isinstance(output, dict):
        output = next(iter(output.values()))
    return output.float().mean()


def _default_step(model: Any, batch: Any, loss_fn: Callable[..., Any] | None) -> Any:
    """Forward and loss for ``batch``: ``(inputs, target)``, a dict of inputs, or inputs."""
    if isinstance(batch, dict):
        output, target = model(**batch), None
    elif isinstance(batch, (tuple, list)) and len(batch) == 2:
        output, target = model(batch[0]), batch[1]
    else:
        output, target = model(batch), None
    if loss_fn is not None and target is not None:
        return loss_fn(output, target)
    return _default_loss(output)


def _is_oom(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    text = str(error).lower()
    # CUDA and MPS say "out of memory"; the CPU allocator "can't allocate memory"
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text)


# -- the search ---------------------------------------------------------------------------


def adam(params: Any) -> Any:
    """The default optimizer of the trials (its per-step cost and state are Adam's)."""
    import torch

    return torch.optim.Adam(params, lr=1e-8)


class _Search:
    def __init__(self, model: Any, sample_batch: Any, *, loss_fn: Any, step_fn: Any,
                 optimizer: Callable[[Any], Any] | None, precision: str, min_time_s: float,
                 min_steps: int) -> None:
        import torch

        self.torch = torch
        self.model = model
        params = list(model.parameters())
        self.device = params[0].device if params else torch.device("cpu")
        self.cuda = self.device.type == "cuda"
        self.base = _map(sample_batch, lambda t: t.to(self.device))
        self.rows = _rows(self.base)
        self.loss_fn, self.step_fn = loss_fn, step_fn
        dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
        self.autocast = (lambda: torch.autocast(self.device.type, dtype=dtype)) if dtype else None
        self.min_time_s, self.min_steps = min_time_s, min_steps
        self.warmup_steps = 1
        self.optimizer = optimizer(params) if optimizer is not None else None

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            self.torch.mps.synchronize()

    def batch(self, size: int) -> Any:
        index = self.torch.arange(size, device=self.device) % self.rows
        return _map(self.base, lambda t: t.index_select(0, index))

    def step(self, batch: Any) -> None:
        if self.autocast is not None:
            with self.autocast():
                loss = (self.step_fn or _default_step)(self.model, batch, self.loss_fn)
        else:
            loss = (self.step_fn or _default_step)(self.model, batch, self.loss_fn)
        if loss is not None:
            loss.backward()
        if self.optimizer is not None:
            self.optimizer.step()
        self.model.zero_grad(set_to_none=True)

    def measure(self, size: int, min_time_s: float | None = None) -> Trial:
        torch = self.torch
        window = self.min_time_s if min_time_s is None else min_time_s
        batch = None
        try:
            if self.cuda:
                torch.cuda.reset_peak_memory_stats(self.device)
            batch = self.batch(size)
            for _ in range(self.warmup_steps):  # allocator, kernels, autotuning
                self.step(batch)
            self.sync()
            times: list[float] = []
            began = time.perf_counter()
            while len(times) < self.min_steps or time.perf_counter() - began < window:
                start = time.perf_counter()
                self.step(batch)
                self.sync()
                times.append(time.perf_counter() - start)
            # the fastest step: interference from other processes only ever slows steps down
            step_s = min(times)
            peak = int(torch.cuda.max_memory_allocated(self.device)) if self.cuda else None
            return Trial(size, True, size / step_s, step_s, peak)
        except (RuntimeError, MemoryError) as error:
            if not _is_oom(error):
                raise
            return Trial(size, False, error=f"out of memory: {str(error).splitlines()[0]}")
        finally:
            del batch
            self.model.zero_grad(set_to_none=True)
            if self.cuda:
                gc.collect()
                torch.cuda.empty_cache()

    def memory_budget(self, margin: float) -> int | None:
        """What a step may peak at: the memory this process can get, less ``margin`` of it.

        The margin is a share of what is usable, not of the device's total, so that a GPU
        that other processes partly hold still leaves a budget.
        """
        if not self.cuda:
            return None
        free, _total = self.torch.cuda.mem_get_info(self.device)
        usable = free + self.torch.cuda.memory_reserved(self.device)
        return budget_from_usable(usable, margin)


class _Snapshot:
    """What trials change: parameters and buffers (copied to the CPU), gradients, mode."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.training = model.training
        self.state = {name: value.detach().to("cpu", copy=True)
                      for name, value in model.state_dict(keep_vars=False).items()
                      if hasattr(value, "copy_")}
        self.grads = [(p, p.grad) for p in model.parameters()]
        for param, _ in self.grads:
            param.grad = None

    def restore(self) -> None:
        import torch

        with torch.no_grad():
            for name, value in self.model.state_dict(keep_vars=False).items():
                if name in self.state:
                    value.copy_(self.state[name])
        for param, grad in self.grads:
            param.grad = grad
        self.model.train(self.training)


def budget_from_usable(usable: int, margin: float) -> int:
    return int(usable * (1.0 - min(max(margin, 0.0), 0.9)))


def _fits(trial: Trial, budget: int | None) -> bool:
    return trial.fits and (budget is None or (trial.peak_memory_bytes or 0) <= budget)


def _predict_peak(fitted: list[Trial], size: int) -> float | None:
    """Peak memory at ``size`` by a line through the two largest fitting trials."""
    if len(fitted) < 2:
        return None
    a, b = sorted(fitted, key=lambda t: t.batch_size)[-2:]
    if a.peak_memory_bytes is None or b.peak_memory_bytes is None:
        return None
    slope = (b.peak_memory_bytes - a.peak_memory_bytes) / (b.batch_size - a.batch_size)
    return b.peak_memory_bytes + slope * (size - b.batch_size)


def _search_memory(search: _Search, trials: list[Trial], *, start: int, max_batch: int,
                   budget: int | None, resolution: float, out_of_time: Callable[[], bool],
                   max_trials: int) -> int | None:
    """Largest fitting size: doubling, then binary search between the last fit and a miss."""
    low: int | None = None
    high: int | None = None  # a size that failed, or is predicted to fail
    size = start
    while len(trials) < max_trials and not out_of_time():
        trial = search.measure(size)
        trials.append(trial)
        if not _fits(trial, budget):
            high = size
            break
        low = size
        if size >= max_batch:
            break
        following = min(size * 2, max_batch)
        predicted = _predict_peak([t for t in trials if _fits(t, budget)], following)
        if budget is not None and predicted is not None and predicted > budget:
            high = following
            break
        size = following
    if low is None:  # even the first size failed: halve until one fits
        size = start // 2
        while size >= 1 and len(trials) < max_trials and not out_of_time():
            trial = search.measure(size)
            trials.append(trial)
            if _fits(trial, budget):
                return size
            size //= 2
        return None
    while (high is not None and high - low > max(1, int(low * resolution))
           and len(trials) < max_trials and not out_of_time()):
        middle = (low + high) // 2
        trial = search.measure(middle)
        trials.append(trial)
        if _fits(trial, budget):
            low = middle
        else:
            high = middle
    return low


def _best_rates(trials: list[Trial]) -> dict[int, float]:
    """Each measured size's best throughput (a size may be measured more than once)."""
    rates: dict[int, float] = {}
    for trial in trials:
        if trial.fits and trial.samples_per_s:
            rates[trial.batch_size] = max(rates.get(trial.batch_size, 0.0), trial.samples_per_s)
    return rates


def _flat_run(rates: dict[int, float], gain: float) -> int:
    """How many of the largest sizes gained less than ``gain`` over every smaller one."""
    run, best = 0, 0.0
    for size in sorted(rates):
        run = 0 if rates[size] > best * (1 + gain) else run + 1
        best = max(best, rates[size])
    return run


def _search_throughput(search: _Search, trials: list[Trial], *, start: int, max_batch: int,
                       gain: float, patience: int, out_of_time: Callable[[], bool],
                       max_trials: int) -> None:
    """Double the size until ``patience`` doublings in a row gained less than ``gain``.

    Before stopping, the sizes since the best one are measured once more, so a burst of
    load from other processes during their first measurement does not end the search.
    """
    size, checked = start, False
    while len(trials) < max_trials and not out_of_time():
        trial = search.measure(size)
        trials.append(trial)
        if not trial.fits:
            break
        if _flat_run(_best_rates(trials), gain) >= patience and not checked:
            checked = True
            for again in sorted(_best_rates(trials))[-(patience + 1):]:
                if len(trials) < max_trials and not out_of_time():
                    trials.append(search.measure(again))
        if _flat_run(_best_rates(trials), gain) >= patience or size >= max_batch:
            break
        size = min(size * 2, max_batch)


def _refine_leaders(search: _Search, trials: list[Trial], *, share: float, rounds: int,
                    min_time_s: float, out_of_time: Callable[[], bool],
                    max_trials: int) -> None:
    """Measure every size within ``share`` of the best again, in turns, ``rounds`` times.

    The doubling measures each size once, in increasing order: a machine that speeds up
    or slows down meanwhile (other processes, clocks) favours the larger or the smaller
    sizes. Taking turns spreads that over the leading sizes, and each keeps its best.
    """
    rates = _best_rates(trials)
    if len(rates) < 2:
        return
    top = max(rates.values())
    leaders = sorted(size for size, rate in rates.items() if rate >= share * top)
    if len(leaders) < 2:
        return
    for _ in range(rounds):
        for size in leaders:
            if len(trials) >= max_trials or out_of_time():
                return
            trials.append(search.measure(size, min_time_s))


def auto_batch_size(model: Any, sample_batch: Any, *, loss_fn: Callable[..., Any] | None = None,
                    step_fn: Callable[..., Any] | None = None,
                    optimizer: Callable[[Any], Any] | None = adam, precision: str = "32",
                    mode: str = "auto", start: int = 16, max_batch: int = 4096,
                    margin: float = 0.1, tolerance: float = 0.03, gain: float = 0.05,
                    patience: int = 2, resolution: float = 0.05, time_budget_s: float = 30.0,
                    max_trials: int = 30, min_time_s: float = 0.05,
                    min_steps: int = 2, refine_rounds: int = 1,
                    refine_share: float = 0.85) -> BatchSizeResult:
    """Measure ``model`` (already on its device) and choose a training batch size.

    ``sample_batch`` is a few rows of real data: ``(inputs, target)``, a dict of inputs
    or an inputs tensor. The step is ``loss_fn(model(inputs), target).backward()`` (the
    output's mean without ``loss_fn``; ``step_fn(model, batch, loss_fn)`` may return the
    loss instead), then a step of ``optimizer(params)`` (Adam by default; None: no
    optimizer step). ``mode``: ``"memory"`` (the default on CUDA: the largest batch whose
    peak memory stays under the memory free to this process less ``margin`` of it),
    ``"throughput"`` (elsewhere: the smallest batch within ``tolerance`` of the best
    throughput measured, doubling until a doubling gains less than ``gain`` ``patience``
    times, then measuring the sizes within ``refine_share`` of the best ``refine_rounds``
    times more, in turns, with twice the window). Sizes stay within
    ``[1, max_batch]``; the search stops after ``max_trials`` or ``time_budget_s``.
    """
    began = time.perf_counter()
    snapshot = _Snapshot(model)
    search = _Search(model, sample_batch, loss_fn=loss_fn, step_fn=step_fn, optimizer=optimizer,
                     precision=precision, min_time_s=min_time_s, min_steps=min_steps)
    if mode == "auto":
        mode = "memory" if search.cuda else "throughput"
    if mode not in ("memory", "throughput"):
        raise ValueError(f"mode must be 'auto', 'memory' or 'throughput', not {mode!r}")
    # on a CPU the second step at a new size is still slower than the ones after it; a
    # memory search reads the peak over every step, so one untimed step is enough there
    search.warmup_steps = 2 if mode == "throughput" else 1
    start = max(1, min(start, max_batch))
    trials: list[Trial] = []

    def out_of_time() -> bool:  # never before the first trial
        return bool(trials) and time.perf_counter() - began > time_budget_s

    model.train()
    try:
        if mode == "memory":
            budget = search.memory_budget(margin)
            chosen = _search_memory(search, trials, start=start, max_batch=max_batch,
                                    budget=budget, resolution=resolution,
                                    out_of_time=out_of_time, max_trials=max_trials)
        else:
            budget = None
            _search_throughput(search, trials, start=start, max_batch=max_batch, gain=gain,
                               patience=patience, out_of_time=out_of_time,
                               max_trials=max_trials)
            _refine_leaders(search, trials, share=refine_share, rounds=refine_rounds,
                            min_time_s=2 * min_time_s, out_of_time=out_of_time,
                            max_trials=max_trials)
            chosen = None
    finally:
        snapshot.restore()
        search.optimizer = None  # its state (on the device) goes now, not at the next gc
        if search.cuda:
            gc.collect()
            search.torch.cuda.empty_cache()
    elapsed = time.perf_counter() - began
    device = str(search.device)
    if mode == "memory":
        if chosen is None:
            raise RuntimeError(f"no batch size fits on {device}: {_no_fit(budget, trials)}")
        reason = _memory_reason(chosen, budget, trials, max_batch, out_of_time())
    else:
        chosen, reason = _throughput_choice(trials, tolerance)
    return BatchSizeResult(chosen, mode, device, reason, elapsed, trials, budget)


def _no_fit(budget: int | None, trials: list[Trial]) -> str:
    """Why the memory search found nothing: the last error, or the budget every trial broke."""
    if not trials:
        return "no trial ran"
    if trials[-1].error or budget is None:
        return str(trials[-1].error)
    smallest = min(trials, key=lambda t: t.batch_size)
    return (f"even batch size {smallest.batch_size} peaks at "
            f"{(smallest.peak_memory_bytes or 0) / GIB:.2f} GiB, over the budget of "
            f"{budget / GIB:.2f} GiB (the memory free to this process less the margin; "
            "other processes may hold the GPU)")


def _memory_reason(chosen: int, budget: int | None, trials: list[Trial], max_batch: int,
                   timed_out: bool) -> str:
    where = f"a peak under {budget / GIB:.1f} GiB" if budget is not None else "memory"
    reason = f"largest batch that fits ({where}) after {len(trials)} trials"
    if chosen >= max_batch:
        reason = f"max_batch {max_batch} fits ({where})"
    if timed_out:
        reason += " (time budget reached)"
    return reason


def _throughput_choice(trials: list[Trial], tolerance: float) -> tuple[int, str]:
    rates = _best_rates(trials)
    if not rates:
        last = trials[-1].error if trials else "no trial ran"
        raise RuntimeError(f"no batch size could be measured: {last}")
    best = max(rates, key=lambda size: rates[size])
    chosen = min(size for size, rate in rates.items() if rate >= (1 - tolerance) * rates[best])
    reason = (f"throughput stops improving at {chosen} ({rates[chosen]:,.0f} samples/s; "
              f"best measured {rates[best]:,.0f} at {best}, {len(trials)} trials)")
    return chosen, reason
