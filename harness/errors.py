"""Errors the command line turns into one clear line and a non-zero exit (no traceback)."""


class HarnessError(Exception):
    """Base class: bad input or environment a user can fix."""


class ConfigError(HarnessError, ValueError):
    """Unknown profile, invalid config value."""


class DataError(HarnessError):
    """Missing or corrupt data: the message names what was looked for and where."""


class ArchFormatError(HarnessError, ValueError):
    """A malformed NAS-Bench-201 arch string or DARTS genotype text."""
