"""gunicorn settings for the Django example: two sync workers, each of which imports
``wsgi.py`` itself (no preload) and so migrates its own in-memory database."""

workers = 2
worker_class = "sync"
accesslog = None
control_socket_disable = True  # no socket in $HOME shared by concurrent runs
