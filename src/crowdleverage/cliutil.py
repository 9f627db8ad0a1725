"""Helpers shared by every feature's CLI: JSON output and typed-error exits."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from crowdleverage.domain.errors import CrowdLevError

F = TypeVar("F", bound=Callable[..., Any])


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")


def report_error(err: CrowdLevError, as_json: bool) -> typer.Exit:
    """Write a typed error to stderr; return the Exit carrying its exit code."""
    if as_json:
        sys.stderr.write(json.dumps(err.to_dict(), ensure_ascii=False) + "\n")
    else:
        sys.stderr.write(f"error: {err.message}\n")
    return typer.Exit(code=err.exit_code)


def typed_errors(fn: F) -> F:
    """Turn a CrowdLevError raised by a command into its exit code and a message.
    The command's `as_json` keyword (the --json flag) selects the format."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CrowdLevError as err:
            raise report_error(err, bool(kwargs.get("as_json"))) from err

    return wrapper  # type: ignore[return-value]
