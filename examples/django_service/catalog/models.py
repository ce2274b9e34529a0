"""Authors and their articles."""

from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=80)
    bio = models.TextField()

    def __str__(self) -> str:
        return self.name


class Article(models.Model):
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="articles")
    title = models.CharField(max_length=200)
    body = models.TextField()
    published = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ("-published",)

    def __str__(self) -> str:
        return self.title
