"""WSGI entry point of the Django example: sets Django up, applies the migrations to this
process's in-memory database (they create the tables and seed them), then serves."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_service.settings")

import django
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application

django.setup()
call_command("migrate", run_syncdb=True, interactive=False, verbosity=0)
application = get_wsgi_application()
