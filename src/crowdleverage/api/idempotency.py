"""Idempotency-Key for money-moving POSTs (after the IETF httpapi draft and Stripe).

The key is claimed by inserting its row before the work runs (a concurrent retry then finds a
row without a response: 409). When the work ends with a 2xx or a typed 4xx, the response is
stored and every later request with the same key and the same method, path and body gets it
back verbatim (header `Idempotent-Replayed: true`). The same key with another body or path is
refused with 422. A 5xx or an unexpected exception releases the key so that a retry can run.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from fastapi import Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from crowdleverage.api import store
from crowdleverage.domain.errors import Conflict, CrowdLevError, InvalidInput

_KEY_RE = re.compile(r"^[A-Za-z0-9_.:\-]{8,128}$")


class IdempotencyKeyMismatch(InvalidInput):
    code = "idempotency_key_reused"


def request_hash(method: str, path: str, body: BaseModel | None) -> str:
    payload = body.model_dump(mode="json") if body is not None else None
    canon = json.dumps([method, path, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


class Idempotent:
    """Bound to one request; `run` executes the work at most once per key."""

    def __init__(self, engine: Engine, request: Request, key: str) -> None:
        self.engine, self.request, self.key = engine, request, key

    def run(
        self, user_id: int, body: BaseModel | None, work: Callable[[], Any], status_code: int = 200
    ) -> JSONResponse:
        path = self.request.url.path
        digest = request_hash(self.request.method, path, body)
        t = store.idempotency
        now = int(time.time())
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    t.insert().values(
                        user_id=user_id,
                        key=self.key,
                        request_hash=digest,
                        path=path,
                        created_at_s=now,
                    )
                )
        except sa.exc.IntegrityError:
            return self._replay(user_id, digest)
        try:
            result = work()
        except CrowdLevError as err:
            if err.http_status >= 500:
                self._release(user_id)
                raise
            self._store(user_id, err.http_status, {"details": {}, **err.to_dict()})
            raise
        except BaseException:
            self._release(user_id)
            raise
        content = jsonable_encoder(result)
        self._store(user_id, status_code, content)
        return JSONResponse(content, status_code=status_code)

    def _replay(self, user_id: int, digest: str) -> JSONResponse:
        t = store.idempotency
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t).where(t.c.user_id == user_id, t.c.key == self.key)
            ).first()
        if row is None:  # released between our insert and this read: ask for a retry
            raise Conflict("a request with this Idempotency-Key was just retried; retry again")
        if row.request_hash != digest:
            raise IdempotencyKeyMismatch(
                "this Idempotency-Key was used for a different request "
                f"({row.path}); use a new key for a new request",
                original_path=row.path,
            )
        if row.status_code is None:
            raise Conflict("a request with this Idempotency-Key is still being processed")
        return JSONResponse(
            json.loads(row.response_json),
            status_code=row.status_code,
            headers={"Idempotent-Replayed": "true"},
        )

    def _store(self, user_id: int, status_code: int, content: Any) -> None:
        t = store.idempotency
        with self.engine.begin() as conn:
            conn.execute(
                t.update()
                .where(t.c.user_id == user_id, t.c.key == self.key, t.c.status_code.is_(None))
                .values(status_code=status_code, response_json=json.dumps(content))
            )

    def _release(self, user_id: int) -> None:
        t = store.idempotency
        with self.engine.begin() as conn:
            conn.execute(t.delete().where(t.c.user_id == user_id, t.c.key == self.key))


def idempotency_dependency(engine_of: Callable[[Request], Engine]) -> Callable[..., Idempotent]:
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
        return Idempotent(engine_of(request), request, idempotency_key)

    return dep
