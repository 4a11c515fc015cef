"""The errors a user can act on. Their message is one line that names the file or the flag
and the problem; the command-line tools print it as ``error: <message>`` (with the traceback
under ``--debug``). Any other exception is a bug of this package or of a dependency and
keeps its traceback: an MXNet internal error (``MXNetError`` subclasses ``RuntimeError``) is
never mistaken for bad input.

Each class also derives from the built-in exception the code raised before the family
existed, so ``except ValueError`` / ``except FileNotFoundError`` callers keep working.
"""


def last_line(err, limit=200):
    """The informative line of an exception's message, at most ``limit`` characters: MXNet's
    messages start with a traceback header and end with the actual problem."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return (lines or [type(err).__name__])[-1][:limit]


class UserError(ValueError):
    """Bad input or a condition the user must fix: a wrong value, an unusable file."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class CheckFailedError(UserError, RuntimeError):
    """A step the user asked for could not be completed or verified: an export that does
    not reload the same, a download that failed, a peer worker that stopped."""


class DivergedError(UserError, FloatingPointError):
    """Training produced a NaN or an infinity."""
