"""docroute benchmark suite: `python -m bench` measures the services against raw baselines on one machine."""
