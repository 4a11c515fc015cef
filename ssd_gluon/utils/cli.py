"""Shared entry point of the command-line tools: bad input ends with one line on stderr,
anything else keeps its traceback; and the argument types that check numbers where they are
typed."""

import argparse
import sys

from .errors import UserError


def run(main, parser, interrupted="interrupted"):
    """Parse arguments, run ``main(args)`` and exit with its status.

    A bad argument prints ``error: argument --flag: <problem>`` and exits 2 (argparse's
    status for usage errors); a ``UserError`` prints ``error: <message>`` and exits 1
    (``--debug``, added to every parser here, shows its traceback too); Ctrl-C prints
    ``error: <interrupted>`` and exits 130. Every other exception propagates with its
    traceback: it is a bug, not bad input.
    """
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of user errors too"
    )
    parser.error = _one_line_usage_error
    args = parser.parse_args()
    debug = vars(args).pop("debug")
    try:
        status = main(args)
    except UserError as err:
        if debug:
            raise
        print("error: %s" % err, file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        if debug:
            raise
        print("error: %s" % interrupted, file=sys.stderr)
        sys.exit(130)
    sys.exit(status)


def _one_line_usage_error(message):
    print("error: %s (see --help)" % message, file=sys.stderr)
    sys.exit(2)


# ---- argument types: a value outside its range is an error naming the flag ------------------


def int_at_least(minimum):
    """argparse type: an integer >= ``minimum``."""

    def parse(text):
        value = _number(int, text, "an integer")
        if value < minimum:
            raise argparse.ArgumentTypeError("must be at least %d, got %d" % (minimum, value))
        return value

    return parse


def float_above(bound):
    """argparse type: a number > ``bound``."""

    def parse(text):
        value = _number(float, text, "a number")
        if not value > bound:
            raise argparse.ArgumentTypeError("must be above %g, got %s" % (bound, text))
        return value

    return parse


def float_in(low, high, low_open=False):
    """argparse type: a number in [low, high] (``(low, high]`` with ``low_open``)."""

    def parse(text):
        value = _number(float, text, "a number")
        if not ((low < value) if low_open else (low <= value)) or not value <= high:
            raise argparse.ArgumentTypeError(
                "must be in %s%g, %g], got %s" % ("(" if low_open else "[", low, high, text)
            )
        return value

    return parse


POSITIVE = int_at_least(1)  # sizes, counts, epochs, intervals
NON_NEGATIVE = int_at_least(0)
FRACTION = float_in(0.0, 1.0)  # score thresholds
IOU = float_in(0.0, 1.0, low_open=True)


def _number(kind, text, what):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected %s, got %r" % (what, text)) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError("expected a finite number, got %r" % text)
    return value
