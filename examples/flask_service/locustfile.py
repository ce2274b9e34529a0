"""A plain Locust file for the Flask service: browse the catalogue, place orders, look
at one's recent orders.

Nothing memgate-specific: ``locust -f examples/flask_service/locustfile.py`` runs it too.
"""

from __future__ import annotations

import collections
import random

from locust import FastHttpUser, task


class Shopper(FastHttpUser):
    def on_start(self) -> None:
        self.recent_orders: collections.deque[int] = collections.deque(maxlen=20)

    @task(2)
    def browse(self) -> None:
        self.client.get(f"/items?page={random.randrange(250)}", name="/items?page=[n]")

    @task(4)
    def view_item(self) -> None:
        self.client.get(f"/items/{random.randrange(1, 5001)}", name="/items/[id]")

    @task(2)
    def place_order(self) -> None:
        lines = [
            {"item_id": random.randrange(1, 5001), "quantity": random.randint(1, 3)}
            for _ in range(random.randint(1, 3))
        ]
        body = {"customer": f"customer-{random.randrange(500)}", "lines": lines}
        with self.client.post("/orders", json=body, catch_response=True) as response:
            if response.status_code == 201:
                self.recent_orders.append(response.json()["id"])

    @task(2)
    def view_order(self) -> None:
        if not self.recent_orders:
            self.place_order()
            return
        order = random.choice(self.recent_orders)
        self.client.get(f"/orders/{order}", name="/orders/[id]")
