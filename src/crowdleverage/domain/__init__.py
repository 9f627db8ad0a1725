"""Domain: money in integer fen, securities and boards, risk parameters, typed errors."""

from crowdleverage.domain.errors import (
    ComplianceBlock,
    ConfigError,
    Conflict,
    ContractRevert,
    CrowdLevError,
    DataFileError,
    Forbidden,
    InvalidInput,
    NotFound,
    OutOfRange,
    PlatformPaused,
    RuleViolation,
    ServiceUnavailable,
    Unauthorized,
)
from crowdleverage.domain.money import format_cn, format_yuan, parse_price_fen, parse_yuan
from crowdleverage.domain.security import Board, Exchange, Security

__all__ = [
    "Board",
    "ComplianceBlock",
    "ConfigError",
    "Conflict",
    "ContractRevert",
    "CrowdLevError",
    "DataFileError",
    "Exchange",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "OutOfRange",
    "PlatformPaused",
    "RuleViolation",
    "Security",
    "ServiceUnavailable",
    "Unauthorized",
    "format_cn",
    "format_yuan",
    "parse_price_fen",
    "parse_yuan",
]
