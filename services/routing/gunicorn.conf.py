"""gunicorn settings of the routing service (port 8002): the shared docroute defaults plus its WSGI app."""

from shared.gunicorn_conf import settings_for

globals().update(settings_for(default_port=8002))
wsgi_app = "routing.api:create_app()"
