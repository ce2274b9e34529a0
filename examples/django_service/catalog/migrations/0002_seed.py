"""Seeds the catalogue: 40 authors and 1,200 articles, the same in every process."""

import datetime
import random

from django.db import migrations

AUTHORS = 40
ARTICLES = 1200
WORDS = ("memory", "heap", "arena", "request", "worker", "cycle", "cache", "page", "leak", "load")


def seed(apps, schema_editor):
    Author = apps.get_model("catalog", "Author")
    Article = apps.get_model("catalog", "Article")
    draw = random.Random(1)
    authors = Author.objects.bulk_create(
        Author(name=f"Author {n}", bio=f"Writes about {WORDS[n % len(WORDS)]}.\n" * 3)
        for n in range(1, AUTHORS + 1)
    )
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    Article.objects.bulk_create(
        (
            Article(
                author=authors[n % AUTHORS],
                title=" ".join(draw.choices(WORDS, k=draw.randint(3, 8))),
                body="\n\n".join(
                    " ".join(draw.choices(WORDS, k=draw.randint(20, 60))) + "."
                    for _ in range(draw.randint(2, 6))
                ),
                published=start + datetime.timedelta(hours=7 * n),
            )
            for n in range(ARTICLES)
        ),
        batch_size=200,
    )


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]  # noqa: RUF012

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]  # noqa: RUF012
