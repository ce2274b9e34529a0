from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "examples.django_service.catalog"
    label = "catalog"
    default_auto_field = "django.db.models.BigAutoField"
