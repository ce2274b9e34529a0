"""A plain Locust file for the noisy service: reports of long-tailed sizes, cached
lookups over a key space larger than the cache, throw-away trees, bursts of pool jobs.

Nothing memgate-specific: ``locust -f examples/noisy_service/locustfile.py`` runs it too.
"""

from __future__ import annotations

import random

from locust import FastHttpUser, task


class Client(FastHttpUser):
    @task(4)
    def report(self) -> None:
        size = min(int(random.lognormvariate(8, 1.6)), 256 * 1024)
        self.client.get(f"/report?size={size}", name="/report")

    @task(4)
    def lookup(self) -> None:
        self.client.get(f"/lookup/{random.randrange(4096)}", name="/lookup/[key]")

    @task(1)
    def graph(self) -> None:
        nodes = random.choice((50, 100, 200, 800))
        self.client.post("/graph", json={"nodes": nodes, "seed": random.randrange(1 << 30)})

    @task(1)
    def batch(self) -> None:
        jobs = [random.randrange(1024, 64 * 1024) for _ in range(random.randint(1, 8))]
        self.client.post("/batch", json={"jobs": jobs})
