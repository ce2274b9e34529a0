"""File descriptors, sockets, threads and processes: growth over the steady state."""

from __future__ import annotations

from gate.analysis.resources import resource_growth
from gate.model import ProcessSample


def samples(fds, threads=lambda r: 4, n: int = 600) -> list[ProcessSample]:
    out = []
    for i in range(n):
        requests = i * 10.0
        out.append(
            ProcessSample(
                t=i / 10,
                requests=requests,
                rss=0,
                rss_anon=0,
                threads=threads(requests),
                fds=fds(requests),
                processes=1,
                sockets=4 + i % 3,  # connections opened and closed: churn, no trend
            )
        )
    return out


def grows(found) -> dict[str, bool]:
    return {r.name: r.grows for r in found}


def test_a_descriptor_kept_every_100_requests_grows() -> None:
    found = resource_growth(samples(lambda r: 20 + int(r // 100)), steady_requests=500)
    assert grows(found) == {"fds": True, "sockets": False, "threads": False, "processes": False}
    fds = found[0]
    assert fds.at_steady == 25 and fds.at_end == 79
    assert fds.trend is not None and 0.008 < fds.trend.slope < 0.012


def test_a_few_opened_once_and_kept_do_not_grow() -> None:
    # A pool opening 3 threads at 2000 requests: a step below the minimum gain.
    found = resource_growth(
        samples(lambda r: 20, threads=lambda r: 4 + 3 * (r >= 2000)), steady_requests=500
    )
    assert not any(grows(found).values())


def test_only_samples_of_the_steady_state_count() -> None:
    # Descriptors opened during the warm-up, flat afterwards.
    found = resource_growth(samples(lambda r: 20 + min(int(r), 1000)), steady_requests=1000)
    assert not grows(found)["fds"]
    assert resource_growth(samples(lambda r: 20), steady_requests=1e9) == ()
