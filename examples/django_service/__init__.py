"""The Django service: a small server-rendered blog (authors, articles) on Django's ORM.

A project as ``django-admin startproject`` lays one out, kept to what it serves:
``settings.py``, ``urls.py``, ``wsgi.py`` and one app, ``catalog`` (models, migrations
with a seeding data migration, views, templates). Served by gunicorn with two sync
workers (``gunicorn.conf.py``)::

    python -m gunicorn examples.django_service.wsgi:application \
        -c examples/django_service/gunicorn.conf.py

Each worker imports ``wsgi.py`` itself (no preload) and applies the migrations to its
own in-memory SQLite database (``call_command("migrate")``): 40 authors and 1,200
articles, read-only afterwards. Django closes no in-memory connection, so the database
lives as long as the worker.

Routes: ``/health``; HTML pages rendered from templates per request: ``/`` (the latest
articles, ``?page=N``), ``/articles/<id>/``, ``/authors/<id>/``; JSON:
``/api/articles/<id>``. With ``DEBUG = False`` Django keeps no query log, and the
template loader compiles each template once; nothing outlives its request.

``DJANGO_LEAK=1`` plants a leak: every rendered page is also stored in a module-level
dict, ``_page_cache``, under a key unique to the request (a cache nobody reads back or
evicts), on the line marked ``# planted leak`` in ``catalog/views.py``.
"""
