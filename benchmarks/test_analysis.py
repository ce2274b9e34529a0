"""Speed of the pure analysis: a run's curve, and ranking 200 candidate sites.

.venv/bin/pytest benchmarks/test_analysis.py
"""

from __future__ import annotations

import numpy as np

from gate.analysis.shape import analyse_curve
from gate.analysis.sites import rank_sites
from gate.model import Frame
from gate.shapes import Shape
from tests.support import LEAK_64, curve


def test_analyse_curve(benchmark) -> None:
    leaking = curve(LEAK_64, phi=0.9, seed=1)
    analysis = benchmark(analyse_curve, leaking)
    assert analysis.shape is Shape.LEAK


def test_rank_200_sites(benchmark) -> None:
    rng = np.random.default_rng(0)
    requests = [float(r) for r in np.linspace(0, 60_000, 200)]
    stacks = [
        (
            (Frame("f", f"/srv/app/m{i}.py", i),),
            [int(v) for v in np.maximum(i * np.asarray(requests) + rng.normal(0, 5e3, 200), 0)],
        )
        for i in range(200)
    ]

    def rank() -> int:
        return len(
            rank_sites(
                iter(stacks), requests=requests, steady_index=10, library_roots=[], base="/srv/app"
            )
        )

    assert benchmark(rank) == 50
