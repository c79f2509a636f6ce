"""gunicorn settings of the console (port 8000): the shared docroute defaults plus its WSGI app."""

from shared.gunicorn_conf import settings_for

globals().update(settings_for(default_port=8000))
wsgi_app = "console.app:create_app()"
