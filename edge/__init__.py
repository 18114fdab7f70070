"""firedamp edge service: serial link → frames → windows → detector → policy → outbox → MQTT."""

__version__ = "0.1.0"
