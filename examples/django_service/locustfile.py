"""A plain Locust file for the Django service: read the front page's pages, articles and
authors' pages, and the JSON view an app's front end would call.

Nothing memgate-specific: ``locust -f examples/django_service/locustfile.py`` runs it too.
"""

from __future__ import annotations

import random

from locust import FastHttpUser, task


class Reader(FastHttpUser):
    @task(2)
    def front_page(self) -> None:
        self.client.get(f"/?page={random.randrange(1, 61)}", name="/?page=[n]")

    @task(4)
    def article(self) -> None:
        self.client.get(f"/articles/{random.randrange(1, 1201)}/", name="/articles/[id]/")

    @task(1)
    def author(self) -> None:
        self.client.get(f"/authors/{random.randrange(1, 41)}/", name="/authors/[id]/")

    @task(2)
    def article_json(self) -> None:
        self.client.get(f"/api/articles/{random.randrange(1, 1201)}", name="/api/articles/[id]")
