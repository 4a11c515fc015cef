"""Shared entry point of the command-line tools: a user error ends with one line on stderr,
anything else keeps its traceback."""

import sys

from .errors import UserError


def run(main, parser, interrupted="interrupted"):
    """Parse arguments, run ``main(args)`` and exit with its status.

    A ``UserError`` prints ``error: <message>`` and exits 1 (``--debug``, added to every
    parser here, shows its traceback too); Ctrl-C prints ``error: <interrupted>`` and exits
    130. Every other exception propagates with its traceback: it is a bug, not bad input.
    """
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of user errors too"
    )
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
