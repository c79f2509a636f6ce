"""docroute-unit: the client a recipient unit runs to take its tasks from its own RabbitMQ queue."""

__version__ = "0.1.0"
