"""Each check against hand-made histories, built in memory."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from gate.environment import ENV_PARTS, env_differences, env_key, env_parts
from gate.outcome import Outcome
from gate.scenario import BudgetSpec
from gate.scenario.sections import ENV_PARTS as SCENARIO_ENV_PARTS
from gate.scenario.sections import EnvPart
from gate.shapes import Shape
from gate.summary import SCHEMA_VERSION, History, ResourceSummary, RunSummary, TrendSummary
from gate.verdict import ResourceCheck, decide
from gate.verdict.history import METRICS, RelativeCheck, history_limit
from tests.support import make_summary

MIB = 2**20


def history_of(runs: list[RunSummary], reference: str | None = None) -> History:
    """The history of scenario ``demo`` holding ``runs`` (oldest first), as the store
    hands it to a check (the store's reading and writing are tested with the store)."""
    return History(SCHEMA_VERSION, "demo", tuple(runs), reference)


def clean_history(**kwargs) -> History:
    runs = [
        make_summary(slope=s, peak_heap=p, run_id=f"r{i}", **kwargs)
        for i, (s, p) in enumerate(
            [(0.2, 6 * MIB), (-0.1, 6 * MIB + 40_000), (0.4, 6 * MIB - 9_000)]
        )
    ]
    return history_of(runs)


def test_no_baseline_is_a_flag_not_a_pass_or_a_failure() -> None:
    decision = decide(make_summary(), None, BudgetSpec())
    assert decision.verdict is Outcome.FLAG
    assert "no baseline yet" in decision.findings[0].message


def test_a_clean_run_against_clean_history_passes() -> None:
    decision = decide(
        make_summary(slope=0.3, peak_heap=6 * MIB + 20_000), clean_history(), BudgetSpec()
    )
    assert (decision.verdict, decision.findings, decision.compared_runs) == (Outcome.PASS, (), 3)


def test_a_leak_fails_and_names_its_line() -> None:
    leak = make_summary(
        slope=256,
        shape=Shape.LEAK,
        peak_heap=9 * MIB,
        sites=(("examples/demo_service/app.py:__call__", 256.0),),
    )
    decision = decide(leak, clean_history(), BudgetSpec())
    assert decision.verdict is Outcome.FAIL
    by_metric = {f.metric: f for f in decision.findings}
    growth = by_metric["heap growth per request"]
    assert growth.severity is Outcome.FAIL
    assert growth.baseline == pytest.approx(0.2)
    assert growth.limit == pytest.approx(4.2)
    assert by_metric["peak heap"].severity is Outcome.FAIL
    site = by_metric["site growth per request"]
    assert site.where is not None and site.where.file == "examples/demo_service/app.py"
    assert "grew in none of the 3 baseline runs" in site.message
    assert site.severity is Outcome.FAIL  # with the heap's leak, which it names
    assert growth.check == "leak" and growth.message.startswith("memory leaks:")
    assert "examples/demo_service/app.py:__call__" in growth.message


def test_growth_past_the_limit_with_an_unsure_interval_is_a_flag() -> None:
    decision = decide(make_summary(slope=6.0, low=-1.0, high=12.0), clean_history(), BudgetSpec())
    assert decision.verdict is Outcome.FLAG
    assert "interval reaches down to -1.0" in decision.findings[0].message


@pytest.mark.parametrize(("extra", "verdict"), [(0.05, Outcome.PASS), (0.25, Outcome.FAIL)])
def test_peak_heap_needs_a_material_change(extra: float, verdict: Outcome) -> None:
    current = make_summary(peak_heap=int(6 * MIB * (1 + extra)))
    assert decide(current, clean_history(), BudgetSpec()).verdict is verdict


def test_history_spread_widens_the_limit() -> None:
    noisy = history_of(
        [
            make_summary(peak_heap=p, run_id=f"r{i}")
            for i, p in enumerate([6 * MIB, 9 * MIB, 12 * MIB, 7 * MIB, 10 * MIB])
        ],
    )
    decision = decide(make_summary(peak_heap=13 * MIB), noisy, BudgetSpec())
    assert (
        decision.verdict is Outcome.PASS
    )  # 13 MiB is within 9 MiB + 3 x 3.0 MiB (spread of 5 runs)


def test_another_environment_says_so_and_only_flags() -> None:
    history = clean_history(env_key="Darwin-arm64-py3.12-memray1.20-8cpu")
    decision = decide(make_summary(peak_heap=9 * MIB), history, BudgetSpec())
    assert decision.verdict is Outcome.FLAG
    assert (
        "another environment (Darwin-arm64-py3.12-memray1.20-8cpu" in decision.findings[0].message
    )
    assert {f.severity for f in decision.findings} == {Outcome.FLAG}


def test_different_settings_are_flagged() -> None:
    decision = decide(make_summary(settings="other"), clean_history(), BudgetSpec())
    assert decision.verdict is Outcome.FLAG
    assert "settings" in decision.findings[0].message


def test_budgets_fail_without_history() -> None:
    budgets = BudgetSpec(max_peak_heap="8MiB", forbid_shapes=[Shape.PLATEAU])
    current = make_summary(peak_heap=9 * MIB, shape=Shape.PLATEAU)
    decision = decide(current, None, budgets)
    assert decision.verdict is Outcome.FAIL
    messages = [f.message for f in decision.findings if f.severity is Outcome.FAIL]
    assert messages == [
        "peak heap 9.0 MiB is over the scenario's budget of 8.0 MiB",
        "shape plateau is forbidden by the scenario's budgets",
    ]


def test_a_leak_fails_even_with_no_baseline_yet() -> None:
    decision = decide(make_summary(slope=64, shape=Shape.LEAK), None, BudgetSpec())
    assert decision.verdict is Outcome.FAIL
    assert "(no baseline yet)" in decision.findings[-1].message


def test_an_accepted_leak_compares_by_rate() -> None:
    site = (("app.py:handler", 64.0),)
    history = history_of(
        [
            make_summary(slope=0.1, run_id="old"),
            make_summary(slope=64, shape=Shape.LEAK, sites=site, run_id="accepted"),
        ],
        reference="accepted",
    )
    same = make_summary(slope=65, shape=Shape.LEAK, sites=(("app.py:handler", 65.0),))
    assert decide(same, history, BudgetSpec()).verdict is Outcome.PASS
    worse = make_summary(slope=130, shape=Shape.LEAK, sites=(("app.py:handler", 130.0),))
    decision = decide(worse, history, BudgetSpec())
    assert decision.verdict is Outcome.FAIL
    assert decision.compared_runs == 1
    site_finding = next(f for f in decision.findings if f.metric == "site growth per request")
    assert site_finding.baseline == 64.0 and "past the history's 64.0" in site_finding.message


def test_small_or_unsure_sites_are_not_reported() -> None:
    tiny = make_summary(sites=(("email/utils.py:format_datetime", 0.05),))
    assert decide(tiny, clean_history(), BudgetSpec()).verdict is Outcome.PASS


def with_rss(summary, slope: float):
    return dataclasses.replace(summary, rss=TrendSummary(slope, slope - 40, slope + 40, 1e-5))


def test_new_fragmentation_is_a_flag() -> None:
    current = with_rss(make_summary(shape=Shape.FRAGMENTATION), 300.0)
    decision = decide(current, clean_history(), BudgetSpec())
    assert decision.verdict is Outcome.FLAG
    assert "fragmentation" in decision.findings[0].message
    assert decide(current, None, BudgetSpec()).verdict is Outcome.FLAG


def test_rss_creeping_as_it_did_in_the_history_is_not_fragmentation_flagged() -> None:
    """A clean service that churns through many sizes creeps its RSS (the noisy service
    sampled: 19 of 100 clean checks flagged): within the history's own RSS growth, the
    service is as it was; past it, flagged."""
    runs = [with_rss(run, s) for run, s in zip(clean_history().runs, (150, 120, 190), strict=True)]
    history = dataclasses.replace(clean_history(), runs=tuple(runs))
    creeping = with_rss(make_summary(shape=Shape.FRAGMENTATION), 170.0)
    assert decide(creeping, history, BudgetSpec()).verdict is Outcome.PASS
    faster = with_rss(make_summary(shape=Shape.FRAGMENTATION), 900.0)
    decision = decide(faster, history, BudgetSpec())
    assert decision.verdict is Outcome.FLAG
    assert any("fragmentation" in f.message for f in decision.findings)


def with_resources(summary, *growing: str):
    resources = tuple(
        ResourceSummary(name, 0.01 if name in growing else 0.0, 30, name in growing)
        for name in ("fds", "sockets", "threads", "processes")
    )
    return dataclasses.replace(summary, resources=resources)


def test_a_resource_that_starts_growing_fails() -> None:
    current = with_resources(make_summary(), "fds")
    history = [with_resources(make_summary(run_id=f"r{n}")) for n in range(3)]
    (finding,) = ResourceCheck().findings(current, history)
    assert finding.severity is Outcome.FAIL
    assert finding.metric == "open file descriptors growth" and finding.current == 10.0
    assert "none of the 3 baseline runs did" in finding.message


def test_growth_the_history_already_had_is_not_news() -> None:
    current = with_resources(make_summary(), "threads")
    history = [with_resources(make_summary(), "threads")]
    assert ResourceCheck().findings(current, history) == []
    # Runs recorded before resources were measured hold none: the growth is reported.
    assert len(ResourceCheck().findings(current, [make_summary()])) == 1


@pytest.mark.parametrize(
    ("history", "slope", "low", "verdict"),
    [
        # A service that frees a little as it runs: a fixed release freeing less is no leak.
        ([-11.7], -5.3, -6.0, Outcome.PASS),
        ([-1.9], 2.3, 0.5, Outcome.PASS),
        # Growth past the margin over no growth still fails.
        ([-1.9], 8.8, 5.4, Outcome.FAIL),
        ([-11.7, -12.0, -11.0], 6.0, 5.0, Outcome.FAIL),
    ],
)
def test_growth_is_judged_from_no_growth_when_the_history_shrank(
    history: list[float], slope: float, low: float, verdict: Outcome
) -> None:
    runs = [make_summary(slope=s, run_id=f"r{i}") for i, s in enumerate(history)]
    shape = Shape.LEAK if low > 0 else Shape.FLAT
    current = make_summary(slope=slope, low=low, high=slope + 1, shape=shape)
    decision = decide(current, history_of(runs), BudgetSpec())
    assert decision.verdict is verdict, decision.findings
    if verdict is Outcome.FAIL:
        (growth,) = [f for f in decision.findings if f.metric == "heap growth per request"]
        assert growth.baseline == pytest.approx(sorted(history)[len(history) // 2])
        assert growth.limit == pytest.approx(4.0)


def test_a_small_history_takes_its_noise_from_its_runs_intervals() -> None:
    # Issue 15's false flag: two recorded runs of an unchanged service at about 22.5
    # B/request, each interval about 9 wide; the limit was 22.5 + 25% = 28.1, and the
    # third run, 28.2, was flagged. Its runs' intervals say a difference of 5.7 is noise.
    history = history_of(
        [
            make_summary(slope=22.4, low=18.0, high=27.0, run_id="r0"),
            make_summary(slope=22.6, low=18.1, high=27.1, run_id="r1"),
        ]
    )
    decision = decide(make_summary(slope=28.2, low=23.6, high=32.8), history, BudgetSpec())
    assert decision.verdict is Outcome.PASS, decision.findings
    # Beyond that noise it is still found: 3 x 4.6 / 3.92 x 1.41 = 9.7 past 22.5.
    leak = make_summary(slope=40.0, low=35.0, high=45.0, shape=Shape.LEAK)
    decision = decide(leak, history, BudgetSpec())
    growth = next(f for f in decision.findings if f.metric == "heap growth per request")
    assert growth.severity is Outcome.FAIL
    assert growth.limit == pytest.approx(22.5 + 3 * 2**0.5 * 9.0 / (2 * 1.959964), rel=1e-3)


def test_precise_runs_keep_the_limit_where_the_history_puts_it() -> None:
    # Narrow intervals (the demo's: about 1 B/request wide) add nothing to the margin.
    leak = make_summary(slope=64.0, shape=Shape.LEAK)
    decision = decide(leak, clean_history(), BudgetSpec())
    growth = next(f for f in decision.findings if f.metric == "heap growth per request")
    assert growth.severity is Outcome.FAIL and growth.limit == pytest.approx(4.2)


def test_a_noisy_run_does_not_raise_its_own_limit() -> None:
    noisy = make_summary(slope=64.0, low=10.0, high=300.0, shape=Shape.LEAK)
    growth = next(
        f
        for f in decide(noisy, clean_history(), BudgetSpec()).findings
        if f.metric == "heap growth per request"
    )
    assert growth.limit == pytest.approx(4.2) and growth.severity is Outcome.FAIL


def test_growth_past_the_limit_that_is_not_surely_a_leak_only_flags() -> None:
    # The shape and the history never disagree: a run fails for leaking only when its
    # growth is certain (shape leak) and past the history's limit.
    unsure = make_summary(slope=30.0, low=20.0, high=40.0, shape=Shape.FLAT)
    decision = decide(unsure, clean_history(), BudgetSpec())
    assert decision.verdict is Outcome.FLAG, decision.findings
    (growth,) = [f for f in decision.findings if f.metric == "heap growth per request"]
    assert "not surely a leak" in growth.message


def test_a_certain_leak_within_the_historys_limit_is_the_services_way() -> None:
    # Clean framework services failed as leaks at 21.9-36.2 B/request that the history's
    # own limit (53.8 B/request) passed: only the shape check failed them.
    runs = [
        make_summary(slope=s, low=s - 15, high=s + 15, shape=Shape.LEAK, run_id=f"r{i}")
        for i, s in enumerate((28.0, 24.0, 31.0))
    ]
    current = make_summary(slope=36.2, low=25.0, high=47.0, shape=Shape.LEAK)
    decision = decide(current, history_of(runs), BudgetSpec())
    assert decision.verdict is Outcome.PASS, decision.findings


def test_a_likely_but_uncertain_leak_with_no_history_flags() -> None:
    likely = make_summary(slope=8.0, low=1.0, high=15.0, p_value=0.03, shape=Shape.FLAT)
    decision = decide(likely, None, BudgetSpec())
    assert decision.verdict is Outcome.FLAG
    assert any(f.message.startswith("memory may leak") for f in decision.findings)
    flat = make_summary(slope=0.5, low=-3.0, high=4.0, p_value=0.4, shape=Shape.FLAT)
    assert not any(f.check == "leak" for f in decide(flat, None, BudgetSpec()).findings)


def test_runs_profiled_otherwise_never_fail_on_what_the_profile_moves() -> None:
    # [profile] native = true moved peak and final RSS 25.9 -> 35.6 MiB on a clean release.
    plain = {"load": {"requests": 5000}, "profile": {"native": False}}
    history = clean_history(compared=plain, settings="plain")
    native = make_summary(
        peak_rss=40 * MIB,
        compared={"load": {"requests": 5000}, "profile": {"native": True}},
        settings="native",
    )
    decision = decide(native, history, BudgetSpec())
    assert decision.verdict is Outcome.FLAG, decision.findings
    assert any("profile.native is true here" in f.message for f in decision.findings)
    assert all(f.severity is Outcome.FLAG for f in decision.findings)
    # A certain leak is still a leak, judged as if there were no history.
    heap = dataclasses.replace(native.heap, slope=64.0, low=60.0, high=68.0)
    leak = dataclasses.replace(native, shape=Shape.LEAK, heap=heap)
    assert decide(leak, history, BudgetSpec()).verdict is Outcome.FAIL


def test_findings_at_one_line_are_one_finding_the_worst_counting_the_rest() -> None:
    sites = (
        ("examples/app.py:main", 40.0),
        ("examples/app.py:main", 90.0),
        ("examples/app.py:main", 12.0),
        ("examples/other.py:handle", 30.0),
    )
    decision = decide(make_summary(slope=170.0, sites=sites), clean_history(), BudgetSpec())
    found = [f for f in decision.findings if f.check == "site"]
    assert [(f.where.file if f.where else None, f.current) for f in found] == [
        ("examples/app.py", 90.0),
        ("examples/other.py", 30.0),
    ]
    assert found[0].message.endswith("(and 2 more stacks reaching this line)")
    assert "more stack" not in found[1].message


def processes(*lifetimes: tuple[float, float, float] | None, ended: bool = True) -> RunSummary:
    """A run of a prefork service: its main process, and one worker per lifetime growth
    ``(slope, low, p_value)`` (``None``: too brief to tell), each ended while the load ran."""
    from gate.summary import ProcessSummary, TrendSummary

    workers = tuple(
        ProcessSummary(
            100 + n,
            False,
            ended,
            TrendSummary(t[0], t[1], t[0] * 2 - t[1], t[2]) if t else None,
        )
        for n, t in enumerate(lifetimes)
    )
    main = ProcessSummary(99, True, False, None)
    return dataclasses.replace(make_summary(), processes=(main, *workers))


def test_recycled_workers_that_mostly_grew_fail_though_the_summed_heap_is_flat() -> None:
    run = processes((380.0, 300.0, 1e-5), (41.0, 20.0, 1e-3), None)
    (found,) = decide(run, clean_history(), BudgetSpec()).findings
    assert (found.check, found.severity, found.current) == ("processes", Outcome.FAIL, 210.5)
    assert found.message.startswith("2 of the 3 processes that ended while the load ran")


def test_a_recycled_worker_warming_up_is_no_leak_only_a_flag() -> None:
    # A clean run measured here: 1 of 9 fresh workers grew surely over its short life.
    run = processes((39.7, 25.4, 4e-4), *[(5.0, -9.0, 0.3)] * 8)
    (found,) = decide(run, clean_history(), BudgetSpec()).findings
    assert (found.check, found.severity) == ("processes", Outcome.FLAG)
    assert "9 of the service's processes ended" in found.message
    # One worker alone is never most of them, nor is half of them.
    assert decide(processes((39.7, 25.4, 4e-4)), clean_history(), BudgetSpec()).verdict is (
        Outcome.FLAG
    )
    half = processes((39.7, 25.4, 4e-4), (45.0, 30.0, 1e-4), (1.0, -5.0, 0.5), None)
    assert decide(half, clean_history(), BudgetSpec()).verdict is Outcome.FLAG


def test_workers_recycled_in_every_compared_run_are_the_services_way() -> None:
    history = history_of([processes(None, None), processes((3.0, -1.0, 0.4))])
    assert decide(processes(None, None, None), history, BudgetSpec()).verdict is Outcome.PASS
    # ...but a leak they hide still fails.
    leaking = processes((300.0, 250.0, 1e-6), (310.0, 260.0, 1e-6), None)
    assert decide(leaking, history, BudgetSpec()).verdict is Outcome.FAIL


def test_workers_that_did_not_end_are_not_this_checks() -> None:
    run = processes((380.0, 300.0, 1e-5), (390.0, 300.0, 1e-5), ended=False)
    assert not [f for f in decide(run, clean_history(), BudgetSpec()).findings]


def test_fresh_workers_that_always_warm_up_are_judged_against_the_history() -> None:
    # Short max_requests lives: every recorded run's ended workers grew surely too.
    warm = [processes((40.0, 20.0, 1e-4), (44.0, 25.0, 1e-4), (38.0, 10.0, 1e-3)) for _ in range(3)]
    history = history_of(warm)
    like_them = processes((42.0, 22.0, 1e-4), (45.0, 30.0, 1e-4), (39.0, 12.0, 1e-3))
    assert decide(like_them, history, BudgetSpec()).verdict is Outcome.PASS
    leaking = processes((300.0, 250.0, 1e-6), (310.0, 260.0, 1e-6), (290.0, 240.0, 1e-6))
    (found,) = decide(leaking, history, BudgetSpec()).findings
    assert (found.check, found.severity, found.current) == ("processes", Outcome.FAIL, 300.0)
    assert found.limit is not None and 44.0 < found.limit < 300.0
    assert "past the history's 40.0 B/request" in found.message


def test_runs_recorded_without_process_data_are_unknown_not_unrecycled() -> None:
    # One run recorded before memgate kept processes, one that recycled workers.
    history = history_of([make_summary(), processes(None, None)])
    assert decide(processes(None, None, None), history, BudgetSpec()).verdict is Outcome.PASS


def test_rss_growth_alone_is_no_finding_while_the_heap_is_within_its_history() -> None:
    """RSS moves with the allocator: past its history while the heap is not, it is the
    shape check's (fragmentation), not a failure of the rate."""
    from gate.summary import TrendSummary

    runs = [make_summary(slope=0.0, run_id=f"r{i}") for i in range(3)]
    noisy_rss = dataclasses.replace(
        make_summary(slope=0.0), rss=TrendSummary(700.0, 650.0, 750.0, 1e-6)
    )
    rss_check = next(
        c for c in (RelativeCheck(m) for m in METRICS) if c.metric.name.startswith("RSS growth")
    )
    assert rss_check.findings(noisy_rss, runs) == []
    leaking = dataclasses.replace(
        make_summary(slope=64.0, low=63.0, high=65.0), rss=TrendSummary(700.0, 650.0, 750.0, 1e-6)
    )
    (found,) = rss_check.findings(leaking, runs)
    assert found.metric == "RSS growth per request" and found.severity is Outcome.FAIL


def test_final_figures_compare_only_with_runs_whose_curve_ended_alike() -> None:
    """Runs recorded before the curve ended at the users' stop have their final figures
    taken after the service freed what their connections held (8 MiB in the load-end
    test): against them, a run holding that memory to the end is no regression; a
    final heap that grew against runs ended alike still is."""
    holding = dataclasses.replace(make_summary(run_id="now"), final_heap=14 * MIB)
    holding = dataclasses.replace(holding, ends_at_stop=True)
    before = [
        dataclasses.replace(make_summary(run_id=f"r{i}"), final_heap=6 * MIB) for i in range(3)
    ]
    assert not [r for r in before if r.ends_at_stop]
    final = next(c for c in (RelativeCheck(m) for m in METRICS) if c.metric.name == "final heap")
    assert final.findings(holding, before) == []
    alike = [dataclasses.replace(r, ends_at_stop=True) for r in before]
    (found,) = final.findings(holding, alike)
    assert found.metric == "final heap" and found.severity is Outcome.FAIL
    peak = next(c for c in (RelativeCheck(m) for m in METRICS) if c.metric.name == "peak heap")
    grown = dataclasses.replace(holding, peak_heap=14 * MIB)
    assert [f.metric for f in peak.findings(grown, before)] == ["peak heap"]  # still compared


def test_the_settings_that_differ_from_the_baselines_are_named() -> None:
    mine = {"load": {"requests": 5000, "users": 4}, "profile": {"native": True}}
    theirs = {"load": {"requests": 3000, "users": 4}, "profile": {"native": False}}
    current = dataclasses.replace(make_summary(run_id="now", settings="b"), settings=mine)
    runs = [
        dataclasses.replace(make_summary(run_id=f"r{i}", settings="a"), settings=theirs)
        for i in range(2)
    ] + [dataclasses.replace(make_summary(run_id="same", settings="b"), settings=mine)]
    decision = decide(current, History(SCHEMA_VERSION, "demo", runs), BudgetSpec())
    (said,) = [f.message for f in decision.findings if f.check == "baseline"]
    assert said == (
        "settings differ from the baseline's: load.requests is 5000 here, 3000 in 2 of the 3"
        " baseline runs; profile.native is true here, false in 2 of the 3 baseline runs:"
        " figures that depend on them may not compare"
    )
    # Runs recorded before memgate kept their settings: the difference without names.
    old = [dataclasses.replace(r, settings=None) for r in runs[:2]]
    decision = decide(current, History(SCHEMA_VERSION, "demo", old), BudgetSpec())
    (said,) = [f.message for f in decision.findings if f.check == "baseline"]
    assert "differ from 2 of the 2 baseline runs'" in said


def test_a_leak_read_on_every_point_for_want_of_full_collections_is_not_certain() -> None:
    # A large heap's collections spaced out to keep their pauses small, in a short run:
    # garbage waiting for one ramps like a leak, and the few read did not grow alike.
    ramp = dataclasses.replace(
        make_summary(slope=28.0, low=25.0, high=31.0, shape=Shape.LEAK), few_collections=True
    )
    decision = decide(ramp, None, BudgetSpec())
    assert decision.verdict is Outcome.FLAG
    (leak,) = [f for f in decision.findings if f.check == "leak"]
    assert "the few full collections read did not grow alike" in leak.message
    assert decide(ramp, clean_history(), BudgetSpec()).verdict is Outcome.FLAG
    # Its sites were read on every point too: one that ramped with the garbage is no
    # certain leak either.
    site = dataclasses.replace(ramp, sites=make_summary(sites=(("app.py:handle", 28.0),)).sites)
    assert decide(site, None, BudgetSpec()).verdict is Outcome.FLAG


def retained(run: RunSummary, slope: float, low: float, high: float, **changes) -> RunSummary:
    """``run`` with a retained heap's growth, as a run with enough full collections."""
    kept = TrendSummary(slope, low, high, 0.001 if low > 0 else 0.4)
    return dataclasses.replace(run, retained=kept, retained_peak=True, **changes)


def retained_history() -> History:
    # Clean runs whose retained heap wandered: up to 17 B/request [1, 35], not a leak.
    spread = [(1.0, -12.0, 12.0), (-3.0, -16.0, 8.0), (17.0, 1.0, 35.0)]
    return history_of([retained(make_summary(run_id=f"r{i}"), *t) for i, t in enumerate(spread)])


def test_a_leak_on_the_retained_heap_is_judged_against_the_historys_retained_growth() -> None:
    history = retained_history()
    # Judged a leak on the retained heap, within what the history's retained heap grew:
    # its way, not a failure (the history's runs were judged on every point).
    wander = retained(make_summary(shape=Shape.LEAK), 15.0, 2.0, 30.0, basis="retained")
    assert decide(wander, history, BudgetSpec()).verdict is Outcome.PASS
    leak = retained(make_summary(shape=Shape.LEAK), 64.0, 58.0, 70.0, basis="retained")
    decision = decide(leak, history, BudgetSpec())
    assert decision.verdict is Outcome.FAIL
    (found,) = [f for f in decision.findings if f.check == "leak"]
    assert "the heap that survived full collections grows 64.0 B/request" in found.message
    assert "3 runs" in found.message
    # A history recorded before memgate kept the retained growth: none to compare with.
    old = history_of([make_summary(run_id=f"o{i}", slope=s) for i, s in enumerate([0, 1, 2])])
    assert decide(wander, old, BudgetSpec()).verdict is Outcome.FAIL


def test_every_point_leaking_where_the_retained_heap_does_not_never_fails() -> None:
    raw = make_summary(slope=40.0, low=35.0, high=45.0, shape=Shape.LEAK)
    ramp = retained(raw, 5.0, -8.0, 50.0)  # judged on every point (basis "heap")
    alone = decide(ramp, None, BudgetSpec())
    assert alone.verdict is Outcome.FLAG
    (found,) = [f for f in alone.findings if f.check == "leak"]
    assert "on every point, but right after full collections only 5.0 B/request" in found.message
    # Within what the history's runs grew on every point: nothing to say.
    alike = history_of([make_summary(run_id=f"h{i}", slope=s) for i, s in enumerate([30, 45, 40])])
    assert not [f for f in decide(ramp, alike, BudgetSpec()).findings if f.check == "leak"]
    assert decide(ramp, clean_history(), BudgetSpec()).verdict is Outcome.FLAG


def test_with_no_history_a_growing_site_fails_only_where_no_retained_heap_decides() -> None:
    # One site grows surely while the heap does not surely leak, and nothing to compare.
    site = make_summary(sites=(("app.py:render", 120.0),))
    flat = dataclasses.replace(site, heap=TrendSummary(60.0, -20.0, 150.0, 0.2))
    # Judged on every point (a prefork server's summed heap, or retained_heap = false),
    # the heap may be too noisy to tell: the site decides.
    (fails,) = [f for f in decide(flat, None, BudgetSpec()).findings if f.check == "leak"]
    assert fails.severity is Outcome.FAIL
    assert fails.message.startswith("memory leaks: app.py:render grows 120.0 B/request")
    # The heap right after full collections does not surely grow: a cache filling slowly
    # is a flag until a history tells.
    kept = retained(flat, 30.0, -10.0, 70.0)
    (flags,) = [f for f in decide(kept, None, BudgetSpec()).findings if f.check == "leak"]
    assert flags.severity is Outcome.FLAG
    assert flags.message.startswith("memory may leak: app.py:render grows 120.0 B/request")
    assert flags.message.endswith("though the heap that survived full collections does not surely")
    # Summed over workers recycled while the load ran, a site is a sawtooth as the heap
    # is: each worker is judged on its own life (the processes check), the site flags.
    recycled = dataclasses.replace(flat, processes=processes(*[(5.0, -9.0, 0.3)] * 2).processes)
    found = decide(recycled, None, BudgetSpec()).findings
    (flags,) = [f for f in found if f.check == "leak"]
    assert flags.severity is Outcome.FLAG
    assert flags.message.startswith("memory may leak: app.py:render grows 120.0 B/request")
    assert flags.message.endswith("each judged on its own life")
    assert Outcome.FAIL not in {f.severity for f in found}
    # One worker that ended (a crash, the OOM killer) is no sawtooth: the site fails.
    crashed = dataclasses.replace(flat, processes=processes((5.0, -9.0, 0.3)).processes)
    (fails,) = [f for f in decide(crashed, None, BudgetSpec()).findings if f.check == "leak"]
    assert fails.severity is Outcome.FAIL


def test_against_another_environments_history_a_new_growing_site_is_a_flag() -> None:
    history = clean_history(env_key="Darwin-arm64-py3.12-memray1.20-8cpu")
    grows = make_summary(sites=(("examples/app.py:handle", 30.0),))
    decision = decide(grows, history, BudgetSpec())
    assert [f.severity for f in decision.findings if f.check == "site"] == [Outcome.FLAG]
    assert decide(grows, clean_history(), BudgetSpec()).verdict is Outcome.FAIL


def test_a_peak_alone_past_the_limit_is_a_transient_and_flags() -> None:
    spike = dataclasses.replace(make_summary(peak_heap=8 * MIB), final_heap=6 * MIB)
    decision = decide(spike, clean_history(), BudgetSpec())
    assert decision.verdict is Outcome.FLAG
    (peak,) = [f for f in decision.findings if f.metric == "peak heap"]
    assert peak.severity is Outcome.FLAG and "a transient peak" in peak.message
    # Where the heap settles higher too, it is a regression.
    assert decide(make_summary(peak_heap=8 * MIB), clean_history(), BudgetSpec()).verdict is (
        Outcome.FAIL
    )


def test_a_peak_within_the_historys_own_highest_plus_a_material_change_is_its_way() -> None:
    # The noisy service's clean peaks: a long upper tail the median and MAD do not see.
    peaks = [15.91, 15.96, 16.04, 16.05, 16.1, 16.17, 16.27, 16.4, 16.5, 17.23]
    runs = [make_summary(run_id=f"p{i}", peak_heap=int(p * MIB)) for i, p in enumerate(peaks)]
    history = history_of(runs)
    limit = history_limit("peak heap", history.runs)
    assert limit == pytest.approx((17.23 + 1) * MIB)  # not 16.135 x 1.1 = 17.7 MiB
    high = dataclasses.replace(make_summary(peak_heap=int(17.98 * MIB)), final_heap=16 * MIB)
    assert not [f for f in decide(high, history, BudgetSpec()).findings if f.check == "history"]
    past = dataclasses.replace(make_summary(peak_heap=int(18.5 * MIB)), final_heap=16 * MIB)
    (found,) = [f for f in decide(past, history, BudgetSpec()).findings if f.check == "history"]
    assert found.metric == "peak heap" and found.severity is Outcome.FLAG  # transient


def test_a_site_whose_growth_is_immaterial_over_the_run_is_no_finding() -> None:
    # A clean Django app's page rendering: 12.5 B/request over about 4,000 requests, 49
    # KiB (a cache's last entries), past a history's limit of 4.4 B/request.
    history = clean_history()
    small = dataclasses.replace(
        make_summary(sites=(("views.py:render_page", 12.5),)), measured_requests=4_000
    )
    assert not [f for f in decide(small, history, BudgetSpec()).findings if f.check == "site"]
    # The same growth over 6,000 requests is 73 KiB: material.
    longer = dataclasses.replace(small, measured_requests=6_000)
    (found,) = [f for f in decide(longer, history, BudgetSpec()).findings if f.check == "site"]
    assert found.severity is Outcome.FAIL


def test_a_site_within_what_one_history_run_grew_there_only_flags() -> None:
    # A clean Flask app's list_items grew 409 B/request in 1 of 18 history runs (a cache
    # that fills in some runs only): its band is 0 +- 0, and the next run that filled
    # it failed. Within that run's growth it flags; past it, it fails.
    runs = [make_summary(run_id=f"h{i}") for i in range(17)]
    runs.append(make_summary(run_id="filled", sites=(("app.py:list_items", 409.0),)))
    history = history_of(runs)
    again = make_summary(sites=(("app.py:list_items", 400.0),))
    (flags,) = [f for f in decide(again, history, BudgetSpec()).findings if f.check == "site"]
    assert flags.severity is Outcome.FLAG
    assert flags.message.endswith("though one of its runs may have grown 409.5 B/request here")
    more = make_summary(sites=(("app.py:list_items", 900.0),))
    (fails,) = [f for f in decide(more, history, BudgetSpec()).findings if f.check == "site"]
    assert fails.severity is Outcome.FAIL


# --- which parts of the environment must match ([gate] env_match) ---------------------

LAPTOP = "Linux-x86_64-py3.11-memray1.20-8cpu-agent"
CI = "Linux-x86_64-py3.11-memray1.20-2cpu-agent"


@pytest.mark.parametrize(
    ("key", "parts"),
    [
        (
            "Linux-x86_64-py3.11-memray1.20-2cpu-agent-counters",
            ("Linux", "x86_64", "3.11", "1.20", "2", "agent-counters"),
        ),
        (
            "Darwin-arm64-py3.12-memray1.20-8cpu-agent",
            ("Darwin", "arm64", "3.12", "1.20", "8", "agent"),
        ),
        # Before the agent (memgate 0.1): run under `memray run`.
        ("Linux-x86_64-py3.11-memray1.20-2cpu", ("Linux", "x86_64", "3.11", "1.20", "2", "")),
        # A result migrated from before memgate counted CPUs.
        ("Linux-x86_64-py3.11-memray1.19-?cpu", ("Linux", "x86_64", "3.11", "1.19", None, "")),
        # No format memgate wrote: nothing known.
        ("linux", (None,) * 6),
        ("Linux-x86_64-py3.11-2cpu", (None,) * 6),
    ],
)
def test_an_environment_key_parses_back_into_its_parts(key, parts) -> None:
    assert env_parts(key) == dict(zip(ENV_PARTS, parts, strict=True))


def test_a_key_memgate_writes_parses_back() -> None:
    key = env_key("Linux", "aarch64", "3.13.1", "1.20.3", 4, agent=True, recording="counters")
    assert env_parts(key) == {
        "system": "Linux",
        "machine": "aarch64",
        "python": "3.13",
        "memray": "1.20",
        "cpus": "4",
        "recording": "agent-counters",
    }


def test_the_scenario_and_the_key_name_the_same_parts() -> None:
    assert typing.get_args(EnvPart) == ENV_PARTS == SCENARIO_ENV_PARTS


def test_an_unknown_part_never_matches_but_equal_keys_always_do() -> None:
    assert env_differences("linux", "linux") == []
    assert env_differences("linux", CI) == list(ENV_PARTS)
    old = "Linux-x86_64-py3.11-memray1.20-?cpu-agent"
    assert env_differences(old, CI) == ["cpus"]
    assert env_differences(old, CI, ["system", "python", "recording"]) == []


def test_a_history_of_more_cpus_is_the_same_environment_when_cpus_need_not_match() -> None:
    history = clean_history(env_key=LAPTOP)
    current = make_summary(peak_heap=9 * MIB, env_key=CI)
    relaxed = [p for p in ENV_PARTS if p != "cpus"]
    decision = decide(current, history, BudgetSpec(), env_match=relaxed)
    assert not any("another environment" in f.message for f in decision.findings)
    assert decision.verdict is Outcome.FAIL and decision.compared_runs == 3
    # By default every part must match: a flag naming the CPU count, failures as flags.
    strict = decide(current, history, BudgetSpec())
    assert strict.verdict is Outcome.FLAG
    assert strict.findings[0].message == (
        f"the baseline comes from another environment ({LAPTOP}; this run: {CI};"
        " differing: cpus): compared anyway, failures reported as flags"
    )
    # Dropping cpus does not drop the rest: another Python still differs.
    other = clean_history(env_key="Linux-x86_64-py3.12-memray1.20-8cpu-agent")
    message = decide(current, other, BudgetSpec(), env_match=relaxed).findings[0].message
    assert "differing: python)" in message


def test_with_no_history_a_heap_summed_over_recycled_workers_is_no_certain_leak() -> None:
    """Judged on every point, the heap summed over workers recycled while the load ran is
    a sawtooth of their births: with no history, its certain growth flags (each worker
    is judged on its own life by the processes check); one ended worker is no sawtooth."""
    leak = make_summary(slope=46.8, shape=Shape.LEAK)
    assert decide(leak, None, BudgetSpec()).verdict is Outcome.FAIL
    recycled = dataclasses.replace(leak, processes=processes(*[(5.0, -9.0, 0.3)] * 2).processes)
    found = decide(recycled, None, BudgetSpec()).findings
    (flags,) = [f for f in found if f.check == "leak"]
    assert flags.severity is Outcome.FLAG
    assert flags.message.startswith("memory may leak: the heap grows 46.8 B/request")
    assert flags.message.endswith("each judged on its own life")
    assert Outcome.FAIL not in {f.severity for f in found}
    crashed = dataclasses.replace(leak, processes=processes((5.0, -9.0, 0.3)).processes)
    assert decide(crashed, None, BudgetSpec()).verdict is Outcome.FAIL
