#!/usr/bin/env bash
# Installs the tools the operations tests drive for real, from Debian's archive:
#   prometheus + promtool  (package prometheus): a real scrape of /metrics, `promtool check rules`
#   chromium               (package chromium):   the status page in a headless browser (playwright-core)
#   pgbouncer              (package pgbouncer):  a real transaction pooler in front of a test server
#   the de_DE.UTF-8 locale (package locales):    money under another lc_monetary (docs/exactness.md)
# Idempotent: a no-op (well under a second) when all are present. Nothing is started: the packages'
# own Prometheus and PgBouncer services are kept from starting, the tests start their own on loopback.
set -euo pipefail

log() { printf '[install-test-tools] %s\n' "$*" >&2; }

have_prometheus() { command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; }
have_chromium() { [ -x /usr/bin/chromium ]; }
have_pgbouncer() { [ -x /usr/sbin/pgbouncer ]; }
have_locale() { locale -a 2>/dev/null | grep -qix 'de_DE.utf8'; }

if have_prometheus && have_chromium && have_pgbouncer && have_locale; then
  log "prometheus, promtool, chromium, pgbouncer and the de_DE.UTF-8 locale are already installed"
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
have_pgbouncer || packages+=(pgbouncer)
have_locale || packages+=(locales)

# Keep package scripts from starting services (Debian's prometheus would listen on :9090, pgbouncer on :6432):
# policy-rc.d answering 101 means "not allowed". Only added when the machine has none, and removed after.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi

if [ "${#packages[@]}" -gt 0 ]; then
  log "installing ${packages[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
# Compiled into the system's locale archive; PostgreSQL servers started afterwards can use it.
have_locale || localedef -i de_DE -f UTF-8 de_DE.UTF-8

have_prometheus && have_chromium && have_pgbouncer && have_locale || { log "installation incomplete"; exit 1; }
log "ready: $(prometheus --version 2>&1 | head -n1); $(/usr/bin/chromium --version 2>/dev/null | head -n1); $(/usr/sbin/pgbouncer --version 2>/dev/null | head -n1)"
