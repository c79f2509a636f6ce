"""gunicorn settings of the archive service (port 8003): the shared docroute defaults plus its WSGI app."""

from shared.gunicorn_conf import settings_for

globals().update(settings_for(default_port=8003))
wsgi_app = "archive.api:create_app()"
