"""Typed errors. Each carries the HTTP status the API answers with and the exit code the CLI
exits with; one handler in each front end maps them (STYLE.md)."""

from __future__ import annotations

from typing import Any, ClassVar


class CrowdLevError(Exception):
    """Base of every error a user can act on."""

    http_status: ClassVar[int] = 400
    exit_code: ClassVar[int] = 1
    code: ClassVar[str] = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details:
            out["details"] = {k: _plain(v) for k, v in self.details.items()}
        return out


def _plain(v: Any) -> Any:
    return v if isinstance(v, str | int | float | bool | type(None) | list | dict) else str(v)


class InvalidInput(CrowdLevError):
    """Malformed or out-of-range input (bad amount, bad code, bad date)."""

    http_status = 422
    exit_code = 2
    code = "invalid_input"


class DataFileError(InvalidInput):
    """A data file is malformed; names the file, the line and the reason. Nothing is loaded."""

    code = "invalid_data_file"

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}", path=path, line=line, reason=reason)
        self.path = path
        self.line = line
        self.reason = reason


class OutOfRange(InvalidInput):
    """A date or value outside what the platform knows (e.g. outside the trading calendar)."""

    code = "out_of_range"


class NotFound(CrowdLevError):
    http_status = 404
    exit_code = 3
    code = "not_found"


class Conflict(CrowdLevError):
    """The request conflicts with current state (duplicate id with another body, bad status)."""

    http_status = 409
    exit_code = 4
    code = "conflict"


class Unauthorized(CrowdLevError):
    http_status = 401
    exit_code = 5
    code = "unauthorized"


class Forbidden(CrowdLevError):
    http_status = 403
    exit_code = 5
    code = "forbidden"


class RuleViolation(CrowdLevError):
    """A business or market rule refuses the action (limit band, lot size, T+1, ratio)."""

    http_status = 422
    exit_code = 6
    code = "rule_violation"


class ContractRevert(RuleViolation):
    """A contract reverted; `reason` is the revert string ("margin: ratio below initial")."""

    code = "contract_revert"

    def __init__(self, reason: str, **details: Any) -> None:
        super().__init__(reason, reason=reason, **details)
        self.reason = reason


class ComplianceBlock(CrowdLevError):
    """KYC, suitability or sanctions refuse the action."""

    http_status = 403
    exit_code = 7
    code = "compliance_block"


class PlatformPaused(CrowdLevError):
    """The platform failed closed (e.g. a reconciliation break) and refuses money movements."""

    http_status = 503
    exit_code = 8
    code = "platform_paused"


class ServiceUnavailable(CrowdLevError):
    """An external part (database, chain node) cannot be reached."""

    http_status = 503
    exit_code = 9
    code = "service_unavailable"


class ConfigError(CrowdLevError):
    http_status = 500
    exit_code = 78
    code = "config_error"


class RateLimited(CrowdLevError):
    """Too many attempts in a window (e.g. failed logins); retry after `retry_after_s`."""

    http_status = 429
    exit_code = 10
    code = "rate_limited"


class IntegrityFailure(CrowdLevError):
    """A tamper-evidence or reconciliation check failed (audit log, liabilities proof, custody
    vs chain): the data cannot be trusted until an operator resolves it."""

    http_status = 409
    exit_code = 11
    code = "integrity_failure"
