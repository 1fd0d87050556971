#!/usr/bin/env bash
# The saga board page in a real browser (board.test.mjs), against the system that
# ./run.sh runs. What it needs is installed on first use and kept for the next run:
#   - Chromium from Debian's packages (/usr/bin/chromium), with sudo when not root;
#   - playwright-core, at the version package-lock.json pins, from the npm registry into
#     ~/.cache/order-system/ (outside the clone: nothing to commit or clean), one folder
#     per lock file, so a new pin installs afresh and an unchanged one is reused.
#
#   tests/browser/run.sh      (./test.sh runs it while ./run.sh is up)
#
# Environment: as board.test.mjs says (GATEWAY_URL, KAFKA_BOOTSTRAP_SERVERS,
# BOARD_SCREENSHOT, ...), and BROWSER_TEST_DEPS to install playwright-core elsewhere.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf '[browser] %s\n' "$*" >&2; }

export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $CHROMIUM ]]; then
  log "installing Chromium from Debian's packages"
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium >&2
fi
log "$("$CHROMIUM" --version 2>/dev/null)"

lock=$(sha256sum "$here/package-lock.json" | cut -c1-12)
export BROWSER_TEST_DEPS=${BROWSER_TEST_DEPS:-$HOME/.cache/order-system/browser-tests-$lock}
if [[ ! -f $BROWSER_TEST_DEPS/node_modules/playwright-core/package.json ]]; then
  log "installing playwright-core (package-lock.json) into $BROWSER_TEST_DEPS"
  # Into a fresh folder, moved into place when complete: an interrupted install is never
  # taken for a finished one next time.
  partial=$BROWSER_TEST_DEPS.partial
  rm -rf "$partial"
  mkdir -p "$partial"
  cp "$here/package.json" "$here/package-lock.json" "$partial/"
  npm ci --prefix "$partial" --no-audit --no-fund --silent >&2
  rm -rf "$BROWSER_TEST_DEPS"
  mv "$partial" "$BROWSER_TEST_DEPS"
fi

exec node "$here/board.test.mjs"
