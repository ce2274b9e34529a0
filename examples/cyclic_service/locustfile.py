"""A plain Locust file for the cyclic service: look up models and routes."""

from __future__ import annotations

import random

from locust import FastHttpUser, task


class Client(FastHttpUser):
    @task(3)
    def model(self) -> None:
        self.client.get(f"/models/{random.randrange(10_000)}", name="/models/[n]")

    @task(2)
    def route(self) -> None:
        self.client.get(f"/routes/{random.randrange(10_000)}", name="/routes/[n]")
