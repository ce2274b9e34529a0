"""The GC probe's running totals on the curve's points, summed over processes."""

from __future__ import annotations

import pytest

from gate.analysis.gc import gc_pressure
from gate.model import Curve, CurvePoint
from gate.observed import GcSample

START = 1000.0


def curve(n: int = 11) -> Curve:
    points = tuple(CurvePoint(requests=100.0 * i, t=float(i), heap=0, rss=0) for i in range(n))
    return Curve(points, warmup_requests=200, warmup_index=2)


def probe(rate: float, full_every: int = 0, start: float = START) -> list:
    """A process collecting ``rate`` times a second, 1 ms each, sampled every 0.5 s."""
    out = []
    for k in range(25):
        t = start + k * 0.5
        n = round(rate * (t - START))
        out.append(GcSample(t, n, n // full_every if full_every else 0, n * 0.001))
    return out


def test_rates_over_the_steady_state() -> None:
    # 100 requests a second and 50 collections of 1 ms a second: 0.5 collections and
    # 0.5 ms per request.
    found = gc_pressure([probe(50.0, full_every=10)], curve(), START, steady=2)
    assert found is not None
    assert found.collections_per_request == pytest.approx(0.5, rel=0.02)
    assert found.full_per_1000_requests == pytest.approx(50.0, rel=0.05)
    assert found.seconds_per_request == pytest.approx(5e-4, rel=0.02)
    assert found.collections[0] == 0 and found.collections[-1] == 500


def test_processes_are_summed() -> None:
    one = gc_pressure([probe(50.0)], curve(), START, steady=2)
    two = gc_pressure([probe(50.0), probe(30.0)], curve(), START, steady=2)
    assert one is not None and two is not None
    assert two.collections_per_request == pytest.approx(0.8, rel=0.02)
    assert two.collections[-1] == one.collections[-1] + 300


def test_no_probe_no_figures() -> None:
    assert gc_pressure([], curve(), START, steady=2) is None


def test_full_collections_are_read_per_process_and_a_cut_line_is_skipped(tmp_path) -> None:
    from gate.observed import FullCollection
    from gate.service.agent_files import read_full_collections

    (tmp_path / "full.41.jsonl").write_text(
        '{"t": 2.5, "pause": 0.01, "forced": true}\n'
        '{"t": 1.5, "pause": 0.02, "forced": false}\n'
        '{"t": 3.5, "pau'  # a kill cut the last line short
    )
    (tmp_path / "full.x.jsonl").write_text('{"t": 1, "pause": 0, "forced": true}\n')
    assert read_full_collections(tmp_path) == {
        41: [FullCollection(1.5, 0.02, False), FullCollection(2.5, 0.01, True)]
    }


def test_a_capture_files_snapshot_after_each_collection_is_the_retained_one() -> None:
    from gate.model import MemorySnapshot
    from gate.observed import FullCollection
    from gate.run.retained import after_collections

    snapshots = [MemorySnapshot(t=t / 100, rss=0, heap=t) for t in range(10)]
    marked = after_collections(snapshots, [FullCollection(0.025, 0.01, True)])
    assert [s.t for s in marked if s.retained] == [0.03]
