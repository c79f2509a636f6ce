"""gunicorn settings of the baseline app: exactly the services' shared settings (workers, threads, logs)."""

from shared.gunicorn_conf import settings_for

globals().update(settings_for(default_port=8090))
wsgi_app = "bench.baseline_app:create_app()"
