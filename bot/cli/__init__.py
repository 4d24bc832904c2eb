"""The `dmarcbot` command line: the same diagnostics as the Slack app, with no Slack at all.

Each command's help text is its handler's docstring, so help and behaviour cannot drift apart.
Exit status: 0 no `error` finding, 1 an error finding, 2 bad input, 3 DNS unreachable.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from bot import __version__
from bot.cli.common import EXIT_BAD_INPUT, AddCommand
from handlers.errors import BadInput, ConfigurationError


def command_registrars() -> list[Callable[[AddCommand], None]]:
    """Every command group's `register_commands(add)`, in the order `dmarcbot --help` lists them.
    Imported here, not at the top, so importing the package loads no command's dependencies."""
    from bot.cli import apply as cli_apply
    from bot.cli import check as cli_check
    from bot.cli import digest as cli_digest
    from bot.cli import failures as cli_failures
    from bot.cli import reports as cli_reports
    from bot.cli import tls_reports as cli_tls_reports
    from bot.cli import watch as cli_watch
    from bot.cli import why as cli_why

    return [
        cli_check.register_commands,
        cli_why.register_commands,
        cli_watch.register_commands,
        cli_digest.register_commands,
        cli_reports.register_commands,
        cli_failures.register_commands,
        cli_tls_reports.register_commands,
        cli_apply.register_commands,
    ]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per handler, help from the handler's docstring."""
    parser = argparse.ArgumentParser(
        prog="dmarcbot", description="Explain why DMARC fails for a domain or a message."
    )
    parser.add_argument("--version", action="version", version=f"dmarcbot {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        doc = (handler.__doc__ or "").strip()
        sub = commands.add_parser(name, help=doc.splitlines()[0], description=doc)
        sub.set_defaults(handler=handler)
        return sub

    for register in command_registrars():
        register(add)
    return parser


# 128 + SIGPIPE: the status a shell reports for a Unix tool whose reader went away (`| head`).
EXIT_PIPE_CLOSED = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dmarcbot` console script and of `python -m bot`."""
    try:
        code = run(argv)
        sys.stdout.flush()  # a reader that went away is found here, not at exit (where it is a traceback)
    except BrokenPipeError:
        # Stop without a word, as Unix tools do. Standard output now points at /dev/null, so the
        # interpreter's own flush at exit does not fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE_CLOSED
    return code


def run(argv: Sequence[str] | None) -> int:
    """Parse the arguments and run the command: its exit status; bad input is exit status 2."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on bad usage, 0 for --help/--version
        return int(exit_.code or 0)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.handler(args))
    except (BadInput, ConfigurationError) as error:  # what was wrong, and what would be right
        from bot.cli.terminal_text import terminal_safe  # a refusal may quote the input it refused

        print(f"dmarcbot {args.command}: {terminal_safe(str(error))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
