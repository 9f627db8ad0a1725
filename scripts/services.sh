#!/usr/bin/env bash
# Start or install what the test suite talks to. Idempotent; safe on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL: this kind of machine starts it before the session, but it may be down.
if command -v pg_ctlcluster >/dev/null 2>&1; then
  if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  fi
fi

# anvil (a real EVM JSON-RPC node), shipped as a binary inside an npm package.
if [ ! -x tools/node_modules/.bin/anvil ] && command -v npm >/dev/null 2>&1; then
  (cd tools && npm install --no-audit --no-fund --silent)
fi

# Chromium for the browser tests (Playwright drives Debian's build; its own download is
# offline-blocked), with a CJK font so that the zh-CN dashboard renders in screenshots.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
fi
