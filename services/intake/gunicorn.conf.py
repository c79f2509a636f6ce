"""gunicorn settings of the intake service (port 8001): the shared docroute defaults plus its WSGI app."""

from shared.gunicorn_conf import settings_for

globals().update(settings_for(default_port=8001))
wsgi_app = "intake.api:create_app()"
