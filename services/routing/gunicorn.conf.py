"""gunicorn settings of the routing service (port 8002): the shared docroute defaults plus its WSGI app."""

from routing.settings import DEFAULT_WEB_THREADS
from shared.gunicorn_conf import settings_for
from shared.settings import Env

globals().update(settings_for(default_port=8002))
# More threads than the other services: up to half of them wait in unit long-polls (capped per process by
# DOCROUTE_POLL_MAX_PER_PROCESS), the rest answer probes and every other request without waiting.
threads = Env().int("DOCROUTE_WEB_THREADS", DEFAULT_WEB_THREADS, min=1, max=256)
wsgi_app = "routing.api:create_app()"
