"""Torch's CPU thread count for a training loop, chosen by the step rate it measures.

On an idle 2-core machine the tiny preset trains about 1.4x faster with 2 intra-op threads than with
1; when other processes keep the cores busy, 2 threads run 3-30x *slower* than 1 (every parallel
region waits for a worker thread the scheduler has parked; one step took 7-10 s instead of 0.3 s;
`bench/retrain_budget.py` measures it). No fixed count is right on a shared machine, and the load
changes while a retrain runs, so `ThreadTuner` measures:

    with ThreadTuner() as tuner:               # threads in {1, usable CPUs}; restored on exit
        train(cfg, shards, out, after_backward=tuner.tick)   # tick() once per step
    tuner.summary()  # {"threads": 1, "steps": {"1": 310, "2": 1}, "seconds_per_step": {...}, ...}

It starts on 1 thread, measures `window` steps, then tries the other count for `window` steps and
keeps the faster (median seconds per step). A trial of more threads is skipped while other processes
use more than `max_others` cores (`busy`: CPU cores used by other processes since the last look, from
/proc/stat; None where unknown): with one other busy process on 2 cores a 2-thread step took 7.7 s
against 0.3 s on 1 thread, so such a trial costs seconds. (On a larger machine with background load
this keeps training on 1 thread: safe, not the fastest; counts between 1 and all CPUs are not tried.)
A trial that is clearly slower (`worse` x the best count's median) ends after its first step. The
loser is tried again `explore_s` seconds later; each lost trial doubles that wait, and makes it at
least `cost_factor` x what the trial cost, so trials take at most ~1/cost_factor of the time. When
more threads' median becomes `worse` x fewer threads' (the machine got busy), fewer are tried at once.
`clock`, `set_threads` and `busy` are injectable so the policy is tested without timing anything.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block on `count` torch CPU threads (None: leave torch's count), restoring the caller's."""
    if count is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class OtherProcessesCpu:
    """CPU cores used by processes other than this one since the previous call (Linux /proc/stat).

    Returns None on the first call, where /proc/stat is unreadable, or over a too short interval."""

    def __init__(self, stat_path: str = "/proc/stat"):
        self.stat_path = stat_path
        self._last: tuple[float, float] | None = None
        try:
            self._tick = os.sysconf("SC_CLK_TCK")
        except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
            self._tick = 100

    def _busy_seconds(self) -> float | None:
        try:
            with open(self.stat_path) as fh:
                fields = fh.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != "cpu" or len(fields) < 5:
            return None
        values = [int(v) for v in fields[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        busy = sum(values[:8]) - idle  # user nice system idle iowait irq softirq steal
        own = sum(os.times()[:2])
        return busy / self._tick - own

    def __call__(self) -> float | None:
        now, others = time.monotonic(), self._busy_seconds()
        if others is None:
            return None
        last = self._last
        if last is not None and now - last[0] < 0.2:
            return None  # too short to tell: keep measuring from the same start
        self._last = (now, others)
        if last is None:
            return None
        return max(0.0, (others - last[1]) / (now - last[0]))


class ThreadTuner:
    def __init__(self, max_threads: int | None = None, *, window: int = 4, explore_s: float = 30.0,
                 max_explore_s: float = 600.0, cost_factor: float = 20.0, worse: float = 1.5, max_others: float = 0.5,
                 clock: Callable[[], float] = time.monotonic, set_threads: Callable[[int], None] | None = None,
                 get_threads: Callable[[], int] | None = None, busy: Callable[[], float | None] | None = None):
        if window < 1 or explore_s <= 0 or worse <= 1:
            raise ValueError("window must be >= 1, explore_s > 0 and worse > 1")
        top = max(1, int(max_threads or usable_cpus()))
        self.choices = [1] if top == 1 else [1, top]
        self.window, self.explore_s, self.max_explore_s = window, explore_s, max_explore_s
        self.cost_factor, self.worse, self.clock, self.max_others = cost_factor, worse, clock, max_others
        if set_threads is None or get_threads is None:
            import torch

            set_threads, get_threads = set_threads or torch.set_num_threads, get_threads or torch.get_num_threads
        self._set, self._get = set_threads, get_threads
        self._busy = busy if busy is not None else OtherProcessesCpu()
        self._before: int | None = None
        self.current = self.choices[0]
        self.median: dict[int, float | None] = {c: None for c in self.choices}
        self.steps: dict[int, int] = {c: 0 for c in self.choices}
        self.switches = self.trials = self.skipped_trials = 0
        self._recent: deque[float] = deque(maxlen=window)
        self._last: float | None = None
        self._skip = 1  # the first interval holds warm-up (allocator, first shuffle-buffer fill)
        self._measuring = True  # the current count has no full window since it was switched to
        self._trial = False  # the current count is on trial against the other one
        self._trial_seconds = 0.0
        self._wait = explore_s
        self._next_trial = float("inf")

    # ---- context: set the starting count, restore the caller's on exit
    def __enter__(self) -> ThreadTuner:
        self._before = self._get()
        self._set(self.current)
        self._busy()  # start the busy-CPU interval
        return self

    def __exit__(self, *exc) -> None:
        if self._before is not None:
            self._set(self._before)

    @property
    def other(self) -> int | None:
        rest = [c for c in self.choices if c != self.current]
        return rest[0] if rest else None

    def _switch(self, threads: int, trial: bool) -> None:
        self._set(threads)
        self.current, self._trial, self._measuring = threads, trial, True
        self._recent.clear()
        self.switches += 1
        if trial:
            self.trials += 1
            self._trial_seconds = 0.0

    def _try_other(self, now: float) -> None:
        other = self.other
        if other > self.current:  # more threads only help while no other process wants the cores
            others = self._busy()
            if others is not None and others > self.max_others:
                self.skipped_trials += 1
                self._next_trial = now + self.explore_s
                return
        self._switch(other, trial=True)

    def _end_trial(self, won: bool, now: float, best: float) -> None:
        """The count on trial won (stay on it) or lost (back to the other, try again later)."""
        if won:
            self._wait = self.explore_s
            self._trial = False
        else:
            steps = max(1, len(self._recent))
            cost = max(0.0, self._trial_seconds - steps * best)
            self._wait = min(self.max_explore_s, max(2 * self._wait, self.cost_factor * cost))
            self._switch(self.other, trial=False)
            self._measuring = False  # the best count's median is known: no need to re-measure it
        self._next_trial = now + self._wait
        self._busy()  # restart the busy-CPU interval

    def tick(self) -> None:
        """Call once per training step (e.g. as `run_training`'s `after_backward` hook)."""
        now = self.clock()
        last, self._last = self._last, now
        if last is None:
            return
        dt = now - last
        self.steps[self.current] += 1
        if self._skip:
            self._skip -= 1
            return
        other = self.other
        if other is None:
            return
        best = self.median[other]
        if self._trial:
            self._trial_seconds += dt
            if best is not None and dt > self.worse * best:
                self.median[self.current] = dt  # clearly slower at its first step: stop the trial now
                self._recent.clear()
                self._recent.append(dt)
                self._end_trial(False, now, best)
                return
        self._recent.append(dt)
        if len(self._recent) == self.window:
            self.median[self.current] = statistics.median(self._recent)
        if self._measuring:
            if len(self._recent) < self.window:
                return
            self._measuring = False
            if best is None:  # the other count was never measured: try it
                self._try_other(now)
            elif self._trial:
                self._end_trial(self.median[self.current] <= best, now, best)
            else:
                self._next_trial = now + self._wait
            return
        mine = self.median[self.current]
        got_slow = other < self.current and best is not None and mine is not None and mine > self.worse * best
        if now >= self._next_trial or got_slow:  # got_slow: the machine got busy, fewer threads may do better
            self._try_other(now)

    def summary(self) -> dict:
        return {"threads": self.current, "choices": list(self.choices), "switches": self.switches,
                "trials": self.trials, "skipped_trials": self.skipped_trials,
                "steps": {str(c): n for c, n in self.steps.items()},
                "seconds_per_step": {str(c): (round(m, 4) if m is not None else None) for c, m in self.median.items()}}
