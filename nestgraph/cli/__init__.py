"""The ``nestgraph`` command line: a thin layer over the public API.

``_parser`` holds the commands' options and help, ``_commands`` one short
function per command, ``_inputs`` reading and writing files, ``terminal`` the
progress lines, the holding back of TensorFlow's native log lines, and tables.

Exit status: 0 ok; 1 differences or problems found (``check``, ``diff``);
2 bad usage or bad input, reported as one ``nestgraph: error: ...`` message on
stderr (``--debug`` adds the traceback); 3 an internal error (a bug).
Everything the command line raises on purpose is a ``NestgraphError``
(its own ``InputError`` included).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

from nestgraph.errors import NestgraphError

from ._commands import EXIT_DIFFERENT, EXIT_OK
from ._inputs import InputError
from ._parser import PROG, build_parser, check_usage
from .terminal import progress

__all__ = [
    "EXIT_DIFFERENT",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "InputError",
    "build_parser",
    "main",
    "progress",
]

EXIT_USAGE = 2  # bad usage (argparse's own code) or bad input
EXIT_INTERNAL = 3  # a bug: never mistaken for "differences found"
EXIT_INTERRUPTED = 130
_EXIT_BROKEN_PIPE = 141  # what a shell reports for a process killed by SIGPIPE

_ERROR_LINE = "{prog}: error: {message}"
_INTERNAL_LINE = "{prog}: internal error: {kind}: {message} (rerun with --debug for the traceback)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Bad usage exits through argparse (``SystemExit(2)``); everything else returns.

    >>> main(["flatten", "no-such-model.yaml"])
    2
    """
    parser = build_parser()
    args = parser.parse_args(argv)  # bad usage: argparse prints it and exits with 2
    check_usage(parser, args)
    debug = bool(args.debug)
    try:
        status: int = args.run(args)
        sys.stdout.flush()
        return status
    except NestgraphError as exc:
        if debug:
            traceback.print_exc()
        print(_ERROR_LINE.format(prog=PROG, message=exc.message), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`nestgraph flatten big.ng | head`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return _EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            traceback.print_exc()
            print(f"{PROG}: internal error (a bug; please report it)", file=sys.stderr)
        else:
            line = _INTERNAL_LINE.format(prog=PROG, kind=type(exc).__name__, message=exc)
            print(line, file=sys.stderr)
        return EXIT_INTERNAL
