"""/docs and /redoc work offline: every script, stylesheet and icon they reference is served by
the app itself (the fastapi-offline package's assets), none comes from a CDN."""

from __future__ import annotations

import re

from api_world import World

_REF = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*:\s*['"]([^'"]+)['"]""")


def _refs(html: str) -> list[str]:
    return [a or b for a, b in _REF.findall(html)]


def test_docs_and_redoc_reference_only_local_assets(world: World) -> None:
    c = world.client
    for page, wanted in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        r = c.get(page)
        assert r.status_code == 200, (page, r.text[:200])
        assert "text/html" in r.headers["content-type"]
        assert not re.search(r"https?://", r.text), f"{page} references a remote URL"
        refs = _refs(r.text)
        assert any(u.endswith(wanted) for u in refs), (page, refs)
        assets = [u for u in refs if u.startswith("/static-docs/")]
        assert assets, (page, refs)
        for url in assets:
            a = c.get(url)
            assert a.status_code == 200, url
            assert len(a.content) > 1000, url  # the real dist file, not an empty stub
    # the openapi document both pages load
    assert c.get("/openapi.json").status_code == 200
    assert c.get("/docs/oauth2-redirect").status_code == 200
