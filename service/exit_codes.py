"""The command line's exit codes, named once (sync, validate, map, demo-data)."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    """Every line done."""
    REJECTED = 1
    """Some lines were rejected (bad input, or refused by the FHIR server); the rest is done."""
    STOPPED = 2
    """Stopped early, no line at fault: configuration, credentials, server unreachable, interrupted,
    or a file that cannot be read. Fix the cause and run the same command again to finish."""
