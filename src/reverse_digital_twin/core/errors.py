"""Exceptions with messages a person can act on."""


class ConfigError(ValueError):
    """A configuration problem: names the file and the key, and says what would be valid."""
