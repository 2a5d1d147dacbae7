"""s3-upscale: status, jobs, live progress, a smoke test, re-drive, backfill and the Runware key, for a deployed stack
(--stack NAME, found by its CloudFormation outputs) or the local one (--local)."""

from __future__ import annotations

import argparse
import sys

from upscale_cli import backfill_command, job, redrive_command, set_key, smoke, status, watch
from upscale_cli.errors import UsageError
from upscale_cli.output import Output
from upscale_cli.target import TargetError, resolve_target

COMMANDS = (status, job, watch, smoke, redrive_command, backfill_command, set_key)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s3-upscale", description=__doc__)
    _target_options(parser, None)
    # The same options after the command name too (`s3-upscale status --local`); SUPPRESS keeps a
    # subcommand's unset option from overwriting one given before the command.
    common = argparse.ArgumentParser(add_help=False)
    _target_options(common, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands, [common])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Output(as_json=bool(args.json))
    try:
        with resolve_target(stack=args.stack, local=bool(args.local), region=args.region) as target:
            return int(args.run(args, target, out))
    except (TargetError, UsageError) as error:
        print(f"s3-upscale: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): not an error of this command
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
