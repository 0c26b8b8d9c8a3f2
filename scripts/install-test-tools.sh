#!/usr/bin/env bash
# Installs the tools the operations tests drive for real, from Debian's archive:
#   prometheus + promtool  (package prometheus): a real scrape of /metrics, `promtool check rules`
#   chromium               (package chromium):   the status page in a headless browser (playwright-core)
# Idempotent: a no-op (well under a second) when both are present. Nothing is started: the package's
# own Prometheus service is kept from starting, the tests start their own on loopback.
set -euo pipefail

log() { printf '[install-test-tools] %s\n' "$*" >&2; }

have_prometheus() { command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; }
have_chromium() { [ -x /usr/bin/chromium ]; }

if have_prometheus && have_chromium; then
  log "prometheus, promtool and chromium are already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then exec sudo -E bash "$0" "$@"; fi
  log "must run as root (or with sudo) to install packages"; exit 1
fi

export DEBIAN_FRONTEND=noninteractive
packages=()
have_prometheus || packages+=(prometheus)
have_chromium || packages+=(chromium)

# Keep package scripts from starting services (Debian's prometheus would listen on :9090):
# policy-rc.d answering 101 means "not allowed". Only added when the machine has none, and removed after.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi

log "installing ${packages[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

have_prometheus && have_chromium || { log "installation incomplete"; exit 1; }
log "ready: $(prometheus --version 2>&1 | head -n1); $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
