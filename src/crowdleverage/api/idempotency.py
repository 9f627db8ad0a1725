"""Idempotency-Key for money-moving POSTs (after the IETF httpapi draft and Stripe): every
such request is a platform command (`flows.commands`) named by (user, key).

The first request runs the command; its response (a 2xx or a typed 4xx) is committed in the
same transaction as the platform's record of its effects, and every later request with the
same key and the same method, path and body gets it back verbatim (header
`Idempotent-Replayed: true`). The same key with another body or path is refused with 422. A
request that failed unexpectedly (500), timed out or was cut by a crash leaves the command
running: a retry with the same key resumes and completes that command — it never runs a
second one. A concurrent retry waits for the first attempt and gets its response.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from fastapi import Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from crowdleverage.domain.errors import InvalidInput
from crowdleverage.flows.commands import CommandSpec, IdempotencyKeyMismatch
from crowdleverage.flows.platform import Platform

__all__ = ["IdempotencyKeyMismatch", "Idempotent", "idempotency_dependency", "request_hash"]

_KEY_RE = re.compile(r"^[A-Za-z0-9_.:\-]{8,128}$")


def request_hash(method: str, path: str, body: BaseModel | None) -> str:
    payload = body.model_dump(mode="json") if body is not None else None
    canon = json.dumps([method, path, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


class Idempotent:
    """Bound to one request; `run` executes the work as a platform command."""

    def __init__(self, platform: Platform, request: Request, key: str) -> None:
        self.platform, self.request, self.key = platform, request, key

    def run(
        self, user_id: int, body: BaseModel | None, work: Callable[[], Any], status_code: int = 200
    ) -> JSONResponse:
        path = self.request.url.path
        spec = CommandSpec(user_id, self.key, request_hash(self.request.method, path, body), path)
        status, content, replayed = self.platform.execute(
            spec, lambda: (status_code, jsonable_encoder(work()))
        )
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        return JSONResponse(content, status_code=status, headers=headers)


def idempotency_dependency(
    platform_of: Callable[[Request], Platform],
) -> Callable[..., Idempotent]:
    def dep(
        request: Request,
        idempotency_key: str = Header(
            ...,
            alias="Idempotency-Key",
            description="client-chosen unique key (8–128 of A-Z a-z 0-9 _ . : -); "
            "a retry with the same key and body gets the first response back",
        ),
    ) -> Idempotent:
        if not _KEY_RE.match(idempotency_key):
            raise InvalidInput(
                "Idempotency-Key must be 8–128 characters of A-Z a-z 0-9 _ . : -",
                header="Idempotency-Key",
            )
        return Idempotent(platform_of(request), request, idempotency_key)

    return dep
