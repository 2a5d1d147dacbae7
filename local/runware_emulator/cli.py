"""``python -m local.runware_emulator``: flags over environment variables over defaults."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from local.runware_emulator.emulator import RunwareEmulator, loopback_host
from local.runware_emulator.faults import (
    FaultConfig,
    fault_cli_flag,
    fault_env_var,
    field_annotations,
    parse_text_value,
)


@dataclass(frozen=True)
class CommandLine:
    host: str
    port: int
    workers: int
    seed: int | None
    faults: FaultConfig
    log_level: str
    api_key: str | None = None


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local.runware_emulator",
        description=(
            "Loopback stand-in for Runware's REST API and P-Image Upscale. Resizes with Pillow LANCZOS "
            "(not the AI model). Every fault flag can also be set with its environment variable; "
            "flags win."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="IPv4 loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default 0)")
    parser.add_argument("--workers", type=int, default=4, help="async task worker threads (default 4)")
    parser.add_argument("--seed", type=int, default=None, help="seed for the fault draws (default random)")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.add_argument(
        "--api-key", default=None, help="the one Bearer key accepted, others get 401 (default: any non-empty key)"
    )
    faults = parser.add_argument_group("faults")
    annotations = field_annotations()
    for item in dataclasses.fields(FaultConfig):
        help_text = f"{item.metadata['help']} (env {fault_env_var(item.name)}, default {item.default!r})"
        if annotations[item.name] == "bool":
            faults.add_argument(
                fault_cli_flag(item.name),
                dest=item.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            faults.add_argument(
                fault_cli_flag(item.name),
                dest=item.name,
                type=_text_parser(annotations[item.name]),
                default=None,
                metavar=item.name.upper(),
                help=help_text,
            )
    return parser


def _text_parser(annotation: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return parse_text_value(annotation, text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def parse_command_line(argv: Sequence[str] | None, environ: Mapping[str, str]) -> CommandLine:
    """Flags over environment variables over defaults; exits with a usage error on bad input."""
    parser = build_arg_parser()
    arguments = parser.parse_args(argv)
    try:
        from_env = FaultConfig.from_env(environ)
        flags = {
            item.name: getattr(arguments, item.name)
            for item in dataclasses.fields(FaultConfig)
            if getattr(arguments, item.name) is not None
        }
        faults = dataclasses.replace(from_env, **flags)
        host = loopback_host(arguments.host)
    except ValueError as error:
        parser.error(str(error))
    return CommandLine(
        host, arguments.port, arguments.workers, arguments.seed, faults, arguments.log_level, arguments.api_key
    )


def main(argv: Sequence[str] | None = None) -> int:
    command = parse_command_line(argv, os.environ)
    logging.basicConfig(level=command.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    emulator = RunwareEmulator(
        host=command.host,
        port=command.port,
        workers=command.workers,
        faults=command.faults,
        seed=command.seed,
        api_key=command.api_key,
    )
    stop_requested = threading.Event()

    def request_stop(signal_number: int, frame: object) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    emulator.start()
    print(
        f"Runware emulator (Pillow LANCZOS stand-in, not the AI model) listening on {emulator.url}",
        flush=True,
    )
    try:
        while not stop_requested.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0
