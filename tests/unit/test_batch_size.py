"""auto_batch_size(): the searches, the choice, and the model left as it was."""

from __future__ import annotations

import pytest

from notebench import batch_size as bs

torch = pytest.importorskip("torch")


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16),
                               torch.nn.ReLU(), torch.nn.Linear(16, 3))


def sample() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(10, 8), torch.randint(0, 3, (10,))


class FakeSearch:
    """Stands in for ``_Search``: a throughput curve and an out-of-memory threshold."""

    def __init__(self, rate=None, oom_above: int | None = None) -> None:
        self.rate = rate or (lambda size: 1000.0 * min(size, 256))
        self.oom_above = oom_above
        self.sizes: list[int] = []

    def measure(self, size: int, min_time_s: float | None = None) -> bs.Trial:
        self.sizes.append(size)
        if self.oom_above is not None and size > self.oom_above:
            return bs.Trial(size, False, error="out of memory")
        rate = self.rate(size)
        return bs.Trial(size, True, rate, size / rate, size * 100)


def test_cpu_measures_throughput_and_restores_the_model() -> None:
    model = small_model()
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = bs.auto_batch_size(model, sample(), loss_fn=torch.nn.functional.cross_entropy,
                                start=2, max_batch=64, min_time_s=0.0, min_steps=1)
    assert result.mode == "throughput" and result.device == "cpu"
    assert 2 <= result.batch_size <= 64 and int(result) == result.batch_size
    assert [t.batch_size for t in result.trials][:2] == [2, 4]
    assert all(t.fits and t.samples_per_s > 0 for t in result.trials)
    assert "throughput" in result.reason and result.elapsed_s > 0
    assert not model.training
    for name, value in model.state_dict().items():  # weights and BatchNorm statistics
        assert torch.equal(value, before[name]), name
    assert all(p.grad is None for p in model.parameters())
    assert result.as_dict()["trials"][0]["batch_size"] == 2


def test_inputs_only_and_dict_batches() -> None:
    model = torch.nn.Linear(8, 2)
    for batch in (torch.randn(4, 8), {"input": torch.randn(4, 8)}):
        if isinstance(batch, dict):
            def step(m, b, loss_fn):
                return m(b["input"]).sum()
        else:
            step = None
        result = bs.auto_batch_size(model, batch, step_fn=step, start=4, max_batch=8,
                                    min_time_s=0.0, min_steps=1)
        assert result.batch_size in (4, 8)


def test_memory_mode_finds_the_largest_size_that_fits() -> None:
    class OomAbove(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] > 100:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return self.linear(x)

    result = bs.auto_batch_size(OomAbove(), torch.randn(3, 4), mode="memory", start=2,
                                max_batch=1024, min_time_s=0.0, min_steps=1)
    assert result.mode == "memory"
    assert 95 <= result.batch_size <= 100
    assert any(not t.fits for t in result.trials)
    sizes = [t.batch_size for t in result.trials]
    assert sizes[:7] == [2, 4, 8, 16, 32, 64, 128]  # doubling, then a binary search
    assert len(sizes) <= 12


def test_other_errors_are_not_swallowed() -> None:
    model = torch.nn.Linear(4, 1)
    with pytest.raises(RuntimeError, match="shapes"):
        bs.auto_batch_size(model, torch.randn(3, 5), min_time_s=0.0, min_steps=1)


def test_throughput_search_stops_when_gains_stop() -> None:
    search, trials = FakeSearch(), []
    bs._search_throughput(search, trials, start=16, max_batch=4096, gain=0.05, patience=2,
                          out_of_time=lambda: False, max_trials=25)
    # two flat doublings, then the sizes since the best are measured again before stopping
    assert search.sizes == [16, 32, 64, 128, 256, 512, 1024, 256, 512, 1024]
    assert bs._throughput_choice(trials, tolerance=0.03)[0] == 256


def test_a_burst_of_load_does_not_end_the_search() -> None:
    seen: dict[int, int] = {}

    def rate(size: int) -> float:  # 128 and 256 measured slow the first time only
        seen[size] = seen.get(size, 0) + 1
        slow = size in (128, 256) and seen[size] == 1
        return 1000.0 * min(size, 1024) * (0.3 if slow else 1.0)

    search, trials = FakeSearch(rate=rate), []
    bs._search_throughput(search, trials, start=16, max_batch=4096, gain=0.05, patience=2,
                          out_of_time=lambda: False, max_trials=25)
    assert 2048 in search.sizes
    assert bs._throughput_choice(trials, tolerance=0.03)[0] == 1024


def test_leading_sizes_are_measured_again_in_turns() -> None:
    true_rate = {16: 100, 32: 190, 64: 340, 128: 560, 256: 700, 512: 760, 1024: 740,
                 2048: 700, 4096: 650}
    seen: dict[int, int] = {}

    def rate(size: int) -> float:  # the machine is busy while 512 is measured the first time
        seen[size] = seen.get(size, 0) + 1
        return true_rate[size] * (0.85 if size == 512 and seen[size] == 1 else 1.0)

    search, trials = FakeSearch(rate=rate), []
    bs._search_throughput(search, trials, start=16, max_batch=4096, gain=0.05, patience=2,
                          out_of_time=lambda: False, max_trials=30)
    assert bs._throughput_choice(trials, tolerance=0.03)[0] == 1024  # misled by the burst
    doubling = len(search.sizes)
    bs._refine_leaders(search, trials, share=0.85, rounds=2, min_time_s=0.1,
                       out_of_time=lambda: False, max_trials=30)
    assert search.sizes[doubling:] == [256, 512, 1024, 2048, 4096] * 2  # in turns, twice
    assert bs._throughput_choice(trials, tolerance=0.03)[0] == 512


def test_throughput_choice_is_the_smallest_close_to_the_best() -> None:
    rates = {16: 100.0, 32: 180.0, 64: 196.0, 128: 200.0, 256: 199.0}
    trials = [bs.Trial(size, True, rate) for size, rate in rates.items()]
    size, reason = bs._throughput_choice(trials, tolerance=0.03)
    assert size == 64 and "best measured 200 at 128" in reason


def test_memory_search_respects_the_budget_and_predicts() -> None:
    search, trials = FakeSearch(), []  # peak = 100 bytes per sample
    chosen = bs._search_memory(search, trials, start=8, max_batch=10**6, budget=10_000,
                               resolution=0.05, out_of_time=lambda: False, max_trials=25)
    assert chosen is not None and 95 <= chosen <= 100
    assert 256 not in search.sizes  # predicted not to fit: never tried


def test_trials_and_time_are_bounded() -> None:
    search, trials = FakeSearch(rate=lambda size: float(size) ** 2), []
    bs._search_throughput(search, trials, start=1, max_batch=2**30, gain=0.05, patience=2,
                          out_of_time=lambda: False, max_trials=5)
    assert len(trials) == 5
    calls = iter([False, False, True])
    search, trials = FakeSearch(), []
    bs._search_memory(search, trials, start=1, max_batch=2**30, budget=None, resolution=0.05,
                      out_of_time=lambda: next(calls, True), max_trials=25)
    assert len(trials) == 2


def test_the_margin_is_a_share_of_what_is_free_to_this_process() -> None:
    # a 140 GiB card that other processes fill to all but 9 GiB still leaves a budget
    free = 9 * bs.GIB
    assert bs.budget_from_usable(free, 0.1) == int(free * 0.9)
    assert bs.budget_from_usable(free, 5.0) > 0  # an absurd margin never zeroes it


def test_no_fit_says_which_budget_every_trial_broke() -> None:
    search, trials = FakeSearch(), []  # peak = 100 bytes per sample
    chosen = bs._search_memory(search, trials, start=8, max_batch=1024, budget=50,
                               resolution=0.05, out_of_time=lambda: False, max_trials=25)
    assert chosen is None and [t.batch_size for t in trials] == [8, 4, 2, 1]
    message = bs._no_fit(50, trials)
    assert "even batch size 1 peaks at" in message and "over the budget" in message
    oom = [bs.Trial(4, False, error="out of memory: CUDA")]
    assert bs._no_fit(50, oom) == "out of memory: CUDA"
