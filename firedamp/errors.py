"""One exception base per boundary, shared by edge, models, hardware and control (it imports none of them).

The CLI prints `firedamp: <message>` for any of them and exits 1.
"""


class FiredampError(Exception):
    """Base of every error the CLI reports as a plain message instead of a traceback."""


class ConfigError(FiredampError):
    """A config file or setting is missing, malformed or out of range (the message names the key)."""


class LinkError(FiredampError):
    """A serial port cannot be opened or used."""


class ModelError(FiredampError):
    """A model file is missing, malformed, tampered with, or does not match what the service expects."""


class DataError(FiredampError):
    """Input data (CSV, history) is unusable; the message names the file, row and column."""


class BrokerError(FiredampError):
    """The MQTT broker refused us or cannot be reached in the way the config requires."""
