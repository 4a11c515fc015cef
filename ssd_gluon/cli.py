"""Shared entry point of the command-line scripts: bad input ends with one line on stderr."""
import sys

# Errors the library raises for bad input, each with a message that names the file.
USER_ERRORS = (FileNotFoundError, ValueError, RuntimeError, FloatingPointError)


def run(main, parser):
    """Parse arguments, run ``main(args)`` and exit with its status; a user error prints
    ``error: <message>`` and exits 1 instead of a traceback."""
    args = parser.parse_args()
    try:
        sys.exit(main(args))
    except USER_ERRORS as err:
        print("error: %s" % err, file=sys.stderr)
        sys.exit(1)


def uses_export(args):
    """For scripts that take a detector as ``--symbol PREFIX`` (an export) or as ``--model``
    with ``--params``: True for the export; one-line errors for neither or both."""
    if args.symbol:
        if args.model or args.params:
            raise ValueError("give either --symbol or --model/--params, not both")
        return True
    if not (args.model and args.params):
        raise ValueError("give --model and --params (or --symbol PREFIX of an export)")
    return False
