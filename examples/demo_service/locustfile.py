"""A plain Locust file for the demo service: browse items, sometimes place an order.

Nothing memgate-specific: ``locust -f examples/demo_service/locustfile.py`` runs it too.
"""

from __future__ import annotations

import itertools
import random

from locust import FastHttpUser, task

# Fresh ids keep an unbounded cache growing; an LRU cache of 2000 fills and levels off.
_next_id = itertools.count(1)


class Shopper(FastHttpUser):
    @task(4)
    def view_item(self) -> None:
        self.client.get(f"/items/{next(_next_id)}", name="/items/[id]")

    @task(1)
    def place_order(self) -> None:
        lines = [{"item_id": random.randrange(1, 10_000), "quantity": random.randint(1, 3)}]
        self.client.post("/orders", json={"lines": lines})
