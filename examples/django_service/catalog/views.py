"""Views of the Django example: HTML pages rendered from templates, and one JSON view."""

from __future__ import annotations

import itertools
import os
from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string

from examples.django_service.catalog.models import Article, Author

LEAK = os.environ.get("DJANGO_LEAK", "") not in ("", "0")
PER_PAGE = 20

_page_cache: dict[str, str] = {}
_requests = itertools.count()


def render_page(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    html = render_to_string(template, context, request)
    if LEAK:
        _page_cache[f"{request.get_full_path()}#{next(_requests)}"] = html  # planted leak
    return HttpResponse(html)


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def index(request: HttpRequest) -> HttpResponse:
    articles = Article.objects.select_related("author").only("title", "published", "author__name")
    page = Paginator(articles, PER_PAGE).get_page(request.GET.get("page"))
    return render_page(request, "catalog/index.html", {"page": page})


def article(request: HttpRequest, article_id: int) -> HttpResponse:
    found = get_object_or_404(Article.objects.select_related("author"), pk=article_id)
    more = found.author.articles.exclude(pk=found.pk)[:5]
    return render_page(request, "catalog/article.html", {"article": found, "more": more})


def author(request: HttpRequest, author_id: int) -> HttpResponse:
    found = get_object_or_404(Author, pk=author_id)
    articles = found.articles.only("title", "published")[:30]
    return render_page(request, "catalog/author.html", {"author": found, "articles": articles})


def article_json(request: HttpRequest, article_id: int) -> JsonResponse:
    found = get_object_or_404(Article.objects.select_related("author"), pk=article_id)
    return JsonResponse(
        {
            "id": found.pk,
            "title": found.title,
            "author": {"id": found.author_id, "name": found.author.name},
            "published": found.published.isoformat(),
            "words": len(found.body.split()),
        }
    )
