"""The edge's names for the shared error types (defined in firedamp.errors, so models/ need not import edge)."""

from firedamp.errors import BrokerError, ConfigError, DataError, FiredampError, LinkError, ModelError

__all__ = ["BrokerError", "ConfigError", "DataError", "FiredampError", "LinkError", "ModelError"]
