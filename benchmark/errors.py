"""The one exception type for mistakes a user can make and fix.

The CLI prints its message on one line and exits with status 2, without a traceback; anything else
that escapes is a bug in blurbench and keeps its traceback.
"""


class BenchError(Exception):
    """A user-facing error: the message says what is wrong and how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # always one line


def closest_names(name: str, candidates: list[str], n: int = 3) -> str:
    """A ' Did you mean: a, b?' suffix for unknown-name errors ('' when nothing is close)."""
    import difflib

    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.4)
    return f" Did you mean: {', '.join(close)}?" if close else ""


class EnvironmentFailure(Exception):
    """The machine, not the user's arguments, failed (no network, a full disk): the CLI prints
    the message on one line and exits with status 1 (a traceback only with BENCH_DEBUG=1)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # always one line
