"""The context object every command receives, and the output helpers all commands share.

Data goes to stdout (a rich table for people, JSON with ``--json``); status and progress go to stderr.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import click
from rich.console import Console

from hearteye.errors import HeartEyeError
from hearteye.settings import HearteyeSettings, get_settings

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AppContext:
    """Settings and consoles, built lazily so `ml --help` does no work."""

    out: Console = field(default_factory=lambda: Console(soft_wrap=True))
    err: Console = field(default_factory=lambda: Console(stderr=True, soft_wrap=True))

    @cached_property
    def settings(self) -> HearteyeSettings:
        return get_settings()

    def emit_json(self, payload: Any) -> None:
        """Machine-readable output: one JSON document on stdout."""
        click.echo(json.dumps(payload, indent=2, default=str))

    def status(self, message: str) -> None:
        """A status line for people, on stderr."""
        self.err.print(message, highlight=False)


pass_app = click.make_pass_decorator(AppContext, ensure=True)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


def handle_errors(func: F) -> F:
    """Turn HeartEye's typed errors into a one-line message and exit status 1 (no traceback)."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HeartEyeError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]
