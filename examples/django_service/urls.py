"""URLs of the Django example."""

from django.urls import path

from examples.django_service.catalog import views

urlpatterns = [
    path("health", views.health),
    path("", views.index, name="index"),
    path("articles/<int:article_id>/", views.article, name="article"),
    path("authors/<int:author_id>/", views.author, name="author"),
    path("api/articles/<int:article_id>", views.article_json, name="article-json"),
]
