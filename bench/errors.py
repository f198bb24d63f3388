"""The one exception type that the command line turns into a one-line message."""


class BenchError(Exception):
    """A problem the user can fix: bad input, missing data, a bad flag.

    The message says what was wrong, where, and what to do about it.
    """


class DataError(BenchError):
    """MovieLens data missing, corrupt or malformed."""
