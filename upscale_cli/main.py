"""s3-upscale: status, jobs, live progress, a smoke test, re-drive, backfill, the Runware key, the stack's names
as environment variables and downloads of results, for a deployed stack (--stack NAME, found by its
CloudFormation outputs) or the local one (--local). Every failure is one line on stderr and an exit
status from the table in docs/cli.md."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import NoReturn

from upscale_cli import backfill_command, download, env, job, redrive_command, set_key, smoke, status, watch
from upscale_cli.errors import DEBUG_VARIABLE, ExitStatus, describe_failure, one_line
from upscale_cli.output import Output
from upscale_cli.target import resolve_target

COMMANDS = (status, job, watch, smoke, redrive_command, backfill_command, set_key, env, download)


def _target_options(parser: argparse.ArgumentParser, default: object) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--stack", default=default, help="CloudFormation stack name of a deployment (or S3_UPSCALE_STACK)"
    )
    where.add_argument(
        "--local",
        action="store_true",
        default=default,
        help="the local stack of `make up`, or one started for this command",
    )
    parser.add_argument("--region", default=default, help="AWS region of the stack (default: the usual AWS settings)")
    parser.add_argument("--json", action="store_true", default=default, help="machine-readable output")


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (and exit 2) like every other failure of s3-upscale."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {one_line(message)} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(ExitStatus.USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="s3-upscale", description=__doc__)
    _target_options(parser, None)
    # The same options after the command name too (`s3-upscale status --local`); SUPPRESS keeps a
    # subcommand's unset option from overwriting one given before the command.
    common = argparse.ArgumentParser(add_help=False)
    _target_options(common, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for command in COMMANDS:
        command.add_parser(commands, [common])
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error, already printed
        return int(done.code or 0)
    out = Output(as_json=bool(args.json))
    try:
        with resolve_target(
            stack=args.stack,
            local=bool(args.local),
            region=args.region,
            start_if_none=bool(getattr(args, "starts_local_stack", False)),
        ) as target:
            return int(args.run(args, target, out))
    except KeyboardInterrupt:
        print("s3-upscale: interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:  # the reader went away (`| head`): not an error of this command
        _quiet_stdout()
        return ExitStatus.OK
    except Exception as error:
        failure = describe_failure(error)
        if failure is None:
            if os.environ.get(DEBUG_VARIABLE):
                traceback.print_exc()
            print(
                f"s3-upscale: unexpected {type(error).__name__}: {one_line(str(error))} "
                f"(run again with {DEBUG_VARIABLE}=1 for the traceback)",
                file=sys.stderr,
            )
            return ExitStatus.INTERNAL
        print(f"s3-upscale: {one_line(str(failure))}", file=sys.stderr)
        return failure.status


def _quiet_stdout() -> None:
    """After a broken pipe, stdout's buffer cannot be flushed: point it at /dev/null so exit is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
