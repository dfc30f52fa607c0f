"""The errors fsjax raises for bad input. They live apart from the config layer so that
numerical modules can raise them without importing it."""


class FsjaxError(Exception):
    """A user error: reported as one line by the command line, never as a traceback."""


class ConfigError(FsjaxError, ValueError):
    """An invalid config; the message names the field."""
