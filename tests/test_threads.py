"""The BLAS thread policy: it keeps the faster count, re-measures, is reproducible, obeys the user."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from vae_numpy.threads import ThreadPolicy


class FakeBlas:
    """A BLAS whose thread count is a number; records every change."""

    def __init__(self, threads: int = 2) -> None:
        self.threads = threads
        self.calls: list[int] = []
        self.last_choice: int | None = None
        self.last_interval: float | None = None
        self.active = 0

    def get(self) -> int:
        return self.threads

    def set(self, n: int) -> None:
        self.calls.append(n)
        self.threads = n


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_steps(
    policy: ThreadPolicy,
    blas: FakeBlas,
    clock: FakeClock,
    seconds: Callable[[int, int], float],
    n: int,
) -> tuple[list[int], float]:
    """Run ``n`` fake steps taking ``seconds(threads, i)``; the counts used and the total time."""
    used = []
    start = clock.now
    for i in range(n):
        with policy.step() as threads:
            assert threads == blas.threads == policy.threads
            used.append(threads)
            clock.now += seconds(threads, i)
    return used, clock.now - start


def make(threads="auto", cores=2, environ=None, blas_threads=None, idle=None, **kwargs):
    """A policy on a fake BLAS and clock; ``idle(now)`` gives idle core-seconds (default unknown)."""
    blas = FakeBlas(cores if blas_threads is None else blas_threads)
    clock = FakeClock()
    policy = ThreadPolicy(
        threads,
        setter=blas,
        clock=clock,
        idle=(lambda: None) if idle is None else (lambda: idle(clock.now)),
        cores=cores,
        environ=environ or {},
        **kwargs,
    )
    return policy, blas, clock


@pytest.mark.parametrize(("fast", "slow"), [(1, 2), (2, 1)])
def test_policy_picks_the_faster_of_two_counts(fast, slow):
    """With steps taking 1 ms at one count and 3 ms at the other, the policy settles on the fast one."""
    policy, blas, clock = make()
    with policy:
        used, _ = run_steps(policy, blas, clock, lambda t, i: 1e-3 if t == fast else 3e-3, 400)
    assert policy.timings == pytest.approx({fast: 1e-3, slow: 3e-3})
    assert used[-300:] == [fast] * 300
    assert policy.most_used() == fast
    assert f"{fast} BLAS thread" in policy.describe() and "measured" in policy.describe()


def test_policy_costs_little_over_the_best_fixed_count_when_speeds_are_stable():
    """Over 20,000 steps the policy is within 2% of the best fixed count, idle-like or contended."""
    for speeds in ({1: 1.4e-3, 2: 1.0e-3}, {1: 1.0e-3, 2: 4.0e-3}, {1: 0.3e-3, 2: 0.3e-3}):
        policy, blas, clock = make()
        with policy:
            _, total = run_steps(policy, blas, clock, lambda t, i, s=speeds: s[t], 20_000)
        assert total <= 1.02 * 20_000 * min(speeds.values()), speeds


@pytest.mark.parametrize(("factor", "steps"), [(10, 1), (3, 2)])
def test_a_much_slower_count_is_dropped_after_one_or_two_steps(factor, steps):
    """A count 10x slower than the one measured before runs one step; 3x slower, two."""
    policy, blas, clock = make()
    with policy:
        used, _ = run_steps(
            policy, blas, clock, lambda t, i: 1e-3 if t == 1 else factor * 1e-3, 100
        )
    assert used.count(2) == steps


def load_arrives_at(step: int) -> Callable[[int, int], float]:
    """Step times: 2 threads win (idle) until ``step``; then a busy core makes them 4x slower
    than 1 thread."""

    def seconds(threads: int, i: int) -> float:
        if threads == 1:
            return 1.4e-3
        return 1e-3 if i < step else 5.6e-3

    return seconds


def test_policy_measures_again_and_follows_a_change_of_load():
    """When the other count becomes faster later, a periodic probe finds it and switches."""
    policy, blas, clock = make(drift=100.0)  # only the periodic probe can notice
    with policy:
        used, _ = run_steps(policy, blas, clock, load_arrives_at(5_000), 20_000)
    assert used[4_000:5_000] == [2] * 1_000
    assert used[-1_000:] == [1] * 1_000
    assert policy.probes > 3


def test_a_drift_in_step_time_triggers_a_probe_at_once():
    """A step time that jumps 4x at the chosen count makes the policy switch within a second of work."""
    policy, blas, clock = make(first_interval=1e9, max_interval=1e9)  # no periodic probes
    with policy:
        used, _ = run_steps(policy, blas, clock, load_arrives_at(3_000), 4_000)
    assert used[2_000:3_000] == [2] * 1_000
    first_one = used.index(1, 3_000)
    assert first_one - 3_000 < 200  # 200 steps of 5.6 ms: about one second
    assert used[-500:] == [1] * 500


def test_more_threads_are_not_tried_while_the_other_cores_are_busy():
    """With no idle core, 2 threads are never run, however slow 1 thread is; idle, they are."""
    policy, blas, clock = make(idle=lambda now: 0.05 * now)  # 5% of a core idle
    with policy:
        used, _ = run_steps(policy, blas, clock, lambda t, i: 1e-3, 20_000)
    assert set(used) == {1} and blas.calls == [1, 2]  # set on entry, restored on exit
    assert policy.busy == {2} and "2: not tried, cores busy" in policy.describe()
    assert policy.probes > 3  # it kept looking
    policy, blas, clock = make(idle=lambda now: 0.9 * now)  # the other core is idle
    with policy:
        used, _ = run_steps(policy, blas, clock, lambda t, i: 1e-3 / t, 200)
    assert used[-100:] == [2] * 100 and policy.busy == set()


def test_cores_freed_later_are_found_at_the_next_probe():
    """When the other core becomes idle after 5 s, the policy tries 2 threads and keeps them."""
    policy, blas, clock = make(idle=lambda now: 0.0 if now < 5 else 0.95 * (now - 5))
    with policy:
        used, _ = run_steps(policy, blas, clock, lambda t, i: 1e-3 / t, 20_000)
    assert used[:4_000] == [1] * 4_000
    assert used[-1_000:] == [2] * 1_000


def test_policy_is_reproducible_for_the_same_timings():
    """The same sequence of step times gives the same sequence of thread counts."""
    rng = np.random.default_rng(0)
    noise = rng.lognormal(0, 0.3, size=5_000)

    def seconds(t, i):
        return noise[i] * (1e-3 if t == 2 else 1.2e-3) * (3 if 2_000 <= i < 3_000 and t == 2 else 1)

    runs = []
    for _ in range(2):
        policy, blas, clock = make()
        with policy:
            used, _ = run_steps(policy, blas, clock, seconds, 5_000)
        runs.append((used, blas.calls, policy.timings))
    assert runs[0] == runs[1]
    assert len(set(runs[0][0])) == 2


@pytest.mark.parametrize(
    ("threads", "environ", "blas_threads", "expected", "reason"),
    [
        (1, {}, 2, 1, "threads=1"),
        (3, {"VAE_NUMPY_THREADS": "1"}, 2, 3, "threads=3"),
        ("auto", {"VAE_NUMPY_THREADS": "1"}, 2, 1, "VAE_NUMPY_THREADS=1"),
        ("auto", {"OPENBLAS_NUM_THREADS": "2"}, 2, 2, "OPENBLAS_NUM_THREADS=2"),
        (None, {"OMP_NUM_THREADS": "1"}, 1, 1, "OMP_NUM_THREADS=1"),
        ("auto", {}, 1, 1, "BLAS was already limited"),
    ],
)
def test_an_explicit_setting_is_respected(threads, environ, blas_threads, expected, reason):
    """threads=k, VAE_NUMPY_THREADS, a BLAS variable or an existing limit fix the count: no probing."""
    policy, blas, clock = make(threads, environ=environ, blas_threads=blas_threads)
    with policy:
        used, _ = run_steps(policy, blas, clock, lambda t, i: 1e-3 * t, 500)
    assert used == [expected] * 500
    assert policy.mode == "fixed" and policy.reason == reason and policy.timings == {}
    assert reason in policy.describe()


def test_vae_numpy_threads_auto_measures_and_one_core_needs_no_measuring():
    """VAE_NUMPY_THREADS=auto still measures; on one usable core the count is simply 1."""
    policy, *_ = make(environ={"VAE_NUMPY_THREADS": "auto"})
    assert policy.mode == "auto" and policy.candidates == (1, 2)
    policy, *_ = make(cores=1)
    assert policy.mode == "fixed" and policy.candidates == (1,)
    policy, *_ = make(cores=8)
    assert policy.candidates == (1, 4, 8)


def test_the_original_count_is_restored_on_exit_even_after_an_error():
    """Leaving the context restores BLAS's count, also when a step raised; failed steps are not timed."""
    policy, blas, clock = make(threads=1, blas_threads=2)
    with pytest.raises(RuntimeError), policy:
        with policy.step():
            assert blas.threads == 1
            raise RuntimeError("boom")
    assert blas.threads == 2 and policy.usage == {}


def test_nothing_changes_before_the_context_is_entered():
    """Creating a policy does not touch BLAS; entering it does."""
    policy, blas, _ = make()
    assert blas.calls == []
    with policy:
        assert blas.calls == [1]


def test_the_next_auto_policy_starts_on_the_last_choice_and_probes_later():
    """After a loop settled on 2 threads, the next loop runs on 2 at once, probing only later."""
    policy, blas, clock = make()
    with policy:
        run_steps(policy, blas, clock, lambda t, i: 1e-3 / t, 400)
    assert blas.last_choice == 2
    again = ThreadPolicy(setter=blas, clock=clock, idle=lambda: None, cores=2, environ={})
    with again:
        used, _ = run_steps(again, blas, clock, lambda t, i: 1e-3 / t, 1_000)  # 0.5 s of work
        assert used == [2] * 1_000 and again.probes == 0
        used, _ = run_steps(again, blas, clock, lambda t, i: 1e-3 if t == 1 else 4e-3, 2_000)
    assert again.probes >= 1 and used[-500:] == [1] * 500  # found 1 thread faster later


def slow_start_on_two_threads(slow_steps: int) -> Callable[[int, int], float]:
    """Step times seen on a virtual machine: 1 thread 5.6 ms; 2 threads 3.6 ms, except their
    first ``slow_steps`` steps, 5.8 ms (the second core, idle until then, runs at half speed)."""
    seen = {"two": 0}

    def seconds(threads: int, i: int) -> float:
        if threads == 1:
            return 5.6e-3
        seen["two"] += 1
        return 5.8e-3 if seen["two"] <= slow_steps else 3.6e-3

    return seconds


@pytest.mark.parametrize(("close", "on_two_after"), [(1.25, 0.5), (1.0, None)])
def test_a_close_call_is_measured_again_within_half_a_second(close, on_two_after):
    """A first probe that caught 2 threads' slow start keeps 1 thread (a near tie), and the
    policy measures again after 0.25 s of work and switches; without the rule for close calls
    it would stay on the slower count for 2 s."""
    policy, blas, clock = make(close=close)
    steps = 360  # about 2 s of work
    with policy:
        used, _ = run_steps(policy, blas, clock, slow_start_on_two_threads(6), steps)
    assert used[:12].count(1) >= 4 and policy.probes >= 1
    if on_two_after is None:
        assert used[30:] == [1] * (steps - 30)  # the first decision held the whole time
    else:
        switched = next(i for i in range(30, steps) if used[i:] == [2] * (steps - i))
        assert sum(5.6e-3 if t == 1 else 3.6e-3 for t in used[:switched]) < on_two_after
        assert policy.timings[2] == pytest.approx(3.6e-3)


@pytest.mark.parametrize(
    ("seconds", "interval"),
    [(lambda t, i: 5.6e-3 if t == 1 else 5.8e-3, 0.25), (lambda t, i: 1e-3 * t, 2.0)],
)
def test_the_next_policy_confirms_a_close_call_of_the_last_one_soon(seconds, interval):
    """A loop that ends on a close call passes it on: the next loop in the process measures
    again after 0.25 s of work; after a clear decision, after 2 s."""
    policy, blas, clock = make()
    with policy:
        run_steps(policy, blas, clock, seconds, 30)
    assert blas.last_choice == 1 and blas.last_interval == interval
    again = ThreadPolicy(setter=blas, clock=clock, idle=lambda: None, cores=2, environ={})
    with again:
        run_steps(again, blas, clock, lambda t, i: 1e-3, int(0.9 * interval / 1e-3))
        assert again.probes == 0
        run_steps(again, blas, clock, lambda t, i: 1e-3, int(0.2 * interval / 1e-3) + 20)
        assert again.probes == 1


def test_most_used_reports_the_count_of_each_period():
    """most_used() gives the count that ran most steps since the previous call."""
    policy, blas, clock = make()
    with policy:
        run_steps(policy, blas, clock, lambda t, i: 1e-3 if t == 1 else 3e-3, 100)
        assert policy.most_used() == 1
        assert policy.most_used() == policy.threads  # no steps since: the count in force


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (0, ValueError, "at least 1"),
        (True, TypeError, "positive integer"),
        ("many", ValueError, "'auto'"),
    ],
)
def test_bad_thread_settings_are_rejected_with_the_fix(value, error, match):
    """threads must be a positive int or 'auto'; the message says so."""
    with pytest.raises(error, match=match):
        make(value)
    with pytest.raises(ValueError, match="VAE_NUMPY_THREADS"):
        make(environ={"VAE_NUMPY_THREADS": "yes" if value is True else str(value)})


def test_the_real_blas_follows_the_policy_and_is_restored():
    """With threadpoolctl underneath, BLAS runs the policy's count inside and its own count after."""
    from threadpoolctl import threadpool_info

    def blas_counts():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    before = blas_counts()
    with ThreadPolicy(1, environ={}) as policy, policy.step():
        assert blas_counts() == {1}
    assert blas_counts() == before


def test_idle_core_seconds_is_unknown_or_grows_by_at_most_the_usable_cores():
    """The machine's idle time is None (not Linux) or grows by at most (cores x elapsed)."""
    import time

    from vae_numpy.threads import idle_core_seconds, usable_cores

    t0, first = time.perf_counter(), idle_core_seconds()
    time.sleep(0.2)
    t1, second = time.perf_counter(), idle_core_seconds()
    if first is None:
        assert second is None
        return
    assert second is not None
    tick = 0.01 * usable_cores()  # /proc/stat counts 10 ms ticks per core
    assert 0 <= second - first <= usable_cores() * (t1 - t0) + 2 * tick


# --- the policy in the training loop and the evaluation loops ---------------------------------


def _blas_counts():
    from threadpoolctl import threadpool_info

    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def _counts_seen_by(model, method):
    """Wrap ``model.method`` to record BLAS's thread count at each call."""
    seen = []
    original = getattr(model, method)

    def spy(*args, **kwargs):
        seen.extend(_blas_counts())
        return original(*args, **kwargs)

    setattr(model, method, spy)
    return seen


@pytest.fixture
def digits_x():
    from vae_numpy.data import load_dataset

    return load_dataset("digits").x


@pytest.mark.parametrize("threads", [1, 2])
def test_fit_trains_on_the_thread_count_given_and_records_it(digits_x, threads):
    """fit(threads=k): every step runs on k BLAS threads, history_ says k, BLAS is restored."""
    from vae_numpy.vae import VAE

    before = _blas_counts()
    model = VAE(64, (32,), 2, rng=0)
    seen = _counts_seen_by(model, "loss_and_gradients_for_batch")
    model.fit(digits_x[:256], epochs=2, batch_size=64, rng=0, progress=False, threads=threads)
    assert set(seen) == {threads} and len(seen) == 8
    assert model.history_["threads"] == [float(threads)] * 2
    assert _blas_counts() == before


def test_fit_with_auto_threads_records_a_candidate_count_per_epoch(digits_x):
    """threads="auto" (the default) records, for each epoch, one of the counts it may use."""
    from vae_numpy.vae import VAE

    before = _blas_counts()
    model = VAE(64, (32,), 2, rng=0)
    seen = _counts_seen_by(model, "loss_and_gradients_for_batch")
    model.fit(digits_x, epochs=3, batch_size=64, rng=0, progress=False)
    candidates = set(ThreadPolicy(environ={}).candidates)
    assert set(model.history_["threads"]) <= candidates and len(model.history_["threads"]) == 3
    assert set(seen) <= candidates
    assert _blas_counts() == before


def test_the_thread_count_changes_loss_and_gradients_by_rounding_at_most(digits_x):
    """A training step's loss and gradients on 1 and on 2 threads agree to float32 rounding."""
    from vae_numpy.vae import VAE

    x = np.tile(digits_x[:256], (1, 13))[:, :784]  # products large enough to be split
    model = VAE(784, (256,), 2, rng=0)
    results = []
    for threads in (1, 2):
        with ThreadPolicy(threads, environ={}) as policy, policy.step():
            model.zero_grad()
            loss, _ = model.loss_and_gradients_for_batch((x,), rng=0)
        results.append((loss, {k: g.copy() for k, g in model.gradients().items()}))
    (loss1, g1), (loss2, g2) = results
    assert loss1 == pytest.approx(loss2, rel=1e-5)
    for k in g1:
        scale = np.abs(g1[k]).max()
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-4, atol=1e-5 * scale, err_msg=k)


def test_a_loop_inside_another_loops_policy_keeps_its_count():
    """The validation inside fit (a nested policy) keeps the count of the training loop."""
    policy, blas, clock = make(threads=1)
    with policy:
        inner = ThreadPolicy(setter=blas, clock=clock, idle=lambda: None, cores=2, environ={})
        assert inner.mode == "fixed" and inner.reason == "inside another loop's policy"
        with inner:
            assert blas.threads == 1
        assert blas.threads == 1
    outer_again = ThreadPolicy(setter=blas, clock=clock, idle=lambda: None, cores=2, environ={})
    assert outer_again.mode == "auto"


def test_fit_rejects_a_bad_thread_count_before_training(digits_x):
    """fit(threads=0) raises ValueError naming threads, and the model is left untouched."""
    from vae_numpy.vae import VAE

    model = VAE(64, (16,), 2, rng=0)
    before = {k: p.copy() for k, p in model.parameters().items()}
    with pytest.raises(ValueError, match="threads"):
        model.fit(digits_x[:64], epochs=1, progress=False, threads=0)
    for k, p in model.parameters().items():
        np.testing.assert_array_equal(p, before[k])


@pytest.mark.parametrize("threads", ["1", "2"])
def test_evaluation_loops_follow_the_thread_setting(digits_x, monkeypatch, threads):
    """score, elbo, iwae_log_likelihood and exact_log_likelihood run on VAE_NUMPY_THREADS threads."""
    from vae_numpy import evaluate
    from vae_numpy.vae import VAE

    monkeypatch.setenv("VAE_NUMPY_THREADS", threads)
    before = _blas_counts()
    model = VAE(64, (32,), 2, rng=0)
    seen_elbo = _counts_seen_by(model, "elbo_for_batch")
    evaluate.elbo(model, digits_x[:40], n_samples=3, rng=0)
    seen_iwae = _counts_seen_by(model, "log_importance_weights")
    evaluate.iwae_log_likelihood(model, digits_x[:40], k=20, rng=0)
    seen_decoder = _counts_seen_by(model, "decoder_output")
    evaluate.exact_log_likelihood(model, digits_x[:5], grid=20)
    seen_terms = _counts_seen_by(model, "loss_terms_for_batch")
    model.score(digits_x[:40])
    counts = [set(seen_elbo), set(seen_iwae), set(seen_decoder), set(seen_terms)]
    assert counts == [{int(threads)}] * 4
    assert _blas_counts() == before


def test_spare_core_seconds_counts_the_spinning_of_this_process_helper_threads():
    """A helper thread of this process burning CPU counts as spare time: it would yield to BLAS."""
    import threading
    import time

    from vae_numpy.threads import idle_core_seconds, spare_core_seconds

    if idle_core_seconds() is None:
        pytest.skip("no /proc/stat: idle time is unknown on this system")

    def spin():
        stop = time.perf_counter() + 0.3
        while time.perf_counter() < stop:
            pass

    helper = threading.Thread(target=spin)
    spare0, idle0 = spare_core_seconds(), idle_core_seconds()
    helper.start()
    helper.join()
    spare1, idle1 = spare_core_seconds(), idle_core_seconds()
    # the helper used about 0.3 s of CPU (less on a busy machine): that is spare, not idle
    assert (spare1 - spare0) - (idle1 - idle0) > 0.05
