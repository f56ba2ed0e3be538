"""ThreadTuner picks torch's CPU thread count by measured step rate (simulated clock: nothing is timed)."""

import pytest

from model.thread_tuner import OtherProcessesCpu, ThreadTuner

IDLE = {1: 0.27, 2: 0.19}  # seconds per step measured on an idle 2-core machine
SHARED = {1: 0.30, 2: 7.0}  # other processes busy on both cores (one 2-thread step took 7 s)


class FakeLoop:
    """A training loop whose step takes `cost(threads, step)` simulated seconds; `others(step)` is the
    CPU other processes use (None: unknown, as where /proc/stat cannot be read)."""

    def __init__(self, cost, others=lambda i: None, start_threads=4, cpus=2, **kw):
        self.t, self.i, self.threads, self.cost, self.calls = 0.0, 0, start_threads, cost, []
        self.tuner = ThreadTuner(cpus, clock=lambda: self.t, set_threads=self._set, get_threads=lambda: self.threads,
                                 busy=lambda: others(self.i), **kw)

    def _set(self, n):
        self.threads = n
        self.calls.append(n)

    def run(self, steps):
        used = []
        for _ in range(steps):
            self.t += self.cost(self.threads, self.i)
            used.append(self.threads)
            self.tuner.tick()
            self.i += 1
        return used


def test_idle_machine_ends_on_two_threads_and_restores_the_callers_count():
    loop = FakeLoop(lambda n, i: IDLE[n], others=lambda i: 0.05)
    with loop.tuner:
        assert loop.threads == 1  # starts on one thread
        used = loop.run(600)
    assert used[-1] == 2 and used.count(2) > 570
    assert loop.threads == 4  # the caller's count is back
    s = loop.tuner.summary()
    assert s["threads"] == 2 and s["choices"] == [1, 2] and s["skipped_trials"] == 0
    assert s["seconds_per_step"] == {"1": 0.27, "2": 0.19}
    assert s["trials"] >= 2  # one thread is tried again now and then, and loses
    assert sum(s["steps"].values()) == 599  # the first tick only starts the clock


def test_busy_cores_skip_the_costly_trial_of_more_threads():
    loop = FakeLoop(lambda n, i: SHARED[n], others=lambda i: 1.6)
    with loop.tuner:
        used = loop.run(1000)
    assert set(used) == {1}
    s = loop.tuner.summary()
    assert s["trials"] == 0 and s["skipped_trials"] >= 5  # looked again every explore_s (30 s)


def test_one_busy_core_is_enough_to_skip_all_cores_on_a_bigger_machine():
    loop = FakeLoop(lambda n, i: {1: 0.3, 8: 5.0}[n], others=lambda i: 1.0, cpus=8)
    with loop.tuner:
        used = loop.run(300)
    assert set(used) == {1} and loop.tuner.summary()["choices"] == [1, 8]


def test_unknown_load_trials_stop_after_one_slow_step_and_back_off_by_their_cost():
    loop = FakeLoop(lambda n, i: SHARED[n])  # busy CPU unknown: trials are the only way to tell
    with loop.tuner:
        used = loop.run(2000)  # 600 s at 0.3 s per step
    assert used[-1] == 1
    trials = sum(1 for a, b in zip(used, used[1:]) if a == 1 and b == 2)
    assert used.count(2) == trials  # every trial of 2 threads lasted one step
    # a trial costs ~6.7 s, so the next one waits >= 20 x that (134 s), then 268 s: over ~600 s, 3 trials
    # (doubling a 30 s wait alone would make 5)
    assert 2 <= trials <= 3
    assert loop.tuner.summary()["trials"] == trials


def test_machine_getting_busy_moves_to_one_thread_within_a_few_steps():
    loop = FakeLoop(lambda n, i: (IDLE if i < 200 else SHARED)[n], others=lambda i: 0.0 if i < 200 else 1.6)
    with loop.tuner:
        used = loop.run(400)
    assert used[199] == 2  # idle: two threads
    first_one = next(i for i in range(200, 400) if used[i] == 1)
    assert first_one <= 205
    assert used[-1] == 1 and used[210:].count(2) == 0  # busy cores: two threads not tried again


def test_machine_freeing_up_goes_back_to_two_threads_at_the_next_look():
    loop = FakeLoop(lambda n, i: (SHARED if i < 150 else IDLE)[n], others=lambda i: 1.6 if i < 150 else 0.0)
    with loop.tuner:
        used = loop.run(700)
    assert used[149] == 1
    assert used[-1] == 2 and used[-300:].count(1) <= 8  # only the short trials of one thread


def test_a_single_slow_step_does_not_flip_the_choice():
    # a checkpoint every 50 steps: one step 20x slower at whatever thread count
    loop = FakeLoop(lambda n, i: IDLE[n] * (20 if i % 50 == 49 else 1), others=lambda i: 0.0, explore_s=1e9)
    with loop.tuner:
        used = loop.run(300)
    assert used[-1] == 2 and used[20:].count(1) == 0


def test_one_cpu_never_changes_anything():
    calls = []
    tuner = ThreadTuner(1, clock=iter(range(100)).__next__, set_threads=calls.append, get_threads=lambda: 1,
                        busy=lambda: 0.0)
    with tuner:
        for _ in range(50):
            tuner.tick()
    assert set(calls) == {1} and tuner.summary()["switches"] == 0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        ThreadTuner(2, worse=1.0, set_threads=print, get_threads=int)


def test_other_processes_cpu_from_proc_stat(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    sampler = OtherProcessesCpu(str(stat))
    sampler._tick = 100
    clock = iter([0.0, 10.0, 10.1, 20.0, 30.0])
    own = iter([5.0, 15.0, 15.0, 15.0, 15.0])  # this process used 10 s of CPU over the first 10 s
    monkeypatch.setattr("model.thread_tuner.time.monotonic", lambda: next(clock))
    monkeypatch.setattr("model.thread_tuner.os.times", lambda: (next(own), 0.0, 0.0, 0.0, 0.0))
    #                user nice system idle iowait irq softirq steal
    stat.write_text("cpu  1000 0 0 5000 0 0 0 0 0 0\ncpu0 ...\n")
    assert sampler() is None  # first look: no interval yet
    stat.write_text("cpu  2600 0 400 5800 200 0 0 0 0 0\ncpu0 ...\n")  # 2000 busy jiffies = 20 s in 10 s
    assert sampler() == pytest.approx(1.0)  # 20 s busy - 10 s ours = 10 s of others over 10 s: one core
    assert sampler() is None  # too short an interval to tell
    stat.write_text("cpu  2600 0 1400 6800 200 0 0 0 0 0\ncpu0 ...\n")  # 10 s more busy, none of it ours
    assert sampler() == pytest.approx(1.0)  # measured from t=10, not from the too-short look at t=10.1
    stat.unlink()
    assert sampler() is None  # unreadable: unknown
