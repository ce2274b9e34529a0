"""A plain Locust file for the queue example's order API: place orders, look at recent ones.

Nothing memgate-specific: ``locust -f examples/queue_service/locustfile.py`` runs it too.
"""

from __future__ import annotations

import collections
import random

from locust import FastHttpUser, task


class Customer(FastHttpUser):
    def on_start(self) -> None:
        # Only this user's last few orders: the worker keeps the last 1000 results.
        self.recent_orders: collections.deque[int] = collections.deque(maxlen=20)

    @task(3)
    def place_order(self) -> None:
        lines = [
            {"item_id": random.randrange(1, 10_000), "quantity": random.randint(1, 3)}
            for _ in range(random.randint(1, 3))
        ]
        response = self.client.post("/orders", json={"lines": lines})
        if response.status_code == 201:
            self.recent_orders.append(response.json()["order"])

    @task(1)
    def view_order(self) -> None:
        if not self.recent_orders:
            self.place_order()
            return
        order = random.choice(self.recent_orders)
        self.client.get(f"/orders/{order}", name="/orders/[id]")
