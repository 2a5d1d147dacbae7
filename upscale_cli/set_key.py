"""`set-key`: store the Runware API key in the stack's secret without echoing it."""

from __future__ import annotations

import argparse
import getpass
import sys

from upscale_cli.errors import StackNotFound, UsageError
from upscale_cli.output import Output
from upscale_cli.target import Target


def add_parser(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "set-key",
        parents=parents,
        help="store the Runware API key in its secret (asked without echo, or read from stdin)",
    )
    parser.set_defaults(run=run)


def read_key() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("Runware API key (not echoed): ").strip()
    return sys.stdin.readline().strip()


def run(args: argparse.Namespace, target: Target, out: Output) -> int:
    if not target.runware_secret:
        raise StackNotFound(f"{target.description} names no Runware key secret (RunwareApiKeySecretArn)")
    key = read_key()
    if not key:
        raise UsageError("no key given (an empty line): the secret is unchanged")
    response = target.client("secretsmanager").put_secret_value(SecretId=target.runware_secret, SecretString=key)
    del key
    result = {"secret": target.runware_secret, "versionId": response.get("VersionId")}
    if out.as_json:
        out.json(result)
    else:
        within = "5 seconds" if target.local else "5 minutes (SECRET_CACHE_SECONDS)"
        out.line(f"stored a new version of {target.runware_secret}; the functions use it within {within}")
    return 0
