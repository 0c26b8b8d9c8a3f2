#!/usr/bin/env bash
# Makes a Debian bookworm machine ready for pgferry's tests, demo and benchmark:
# the PostgreSQL server (15 by default) and the pgvector extension for it.
# pgvector is not packaged for PostgreSQL 15 in bookworm, so it is built from Debian's
# source package of a newer release. Idempotent: a no-op (well under a second) when both are present.
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-15}"
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
PG_SHARE="/usr/share/postgresql/${PG_MAJOR}"
SRC_SUITE="${PGVECTOR_SOURCE_SUITE:-trixie}"

log() { printf '[install-postgres] %s\n' "$*" >&2; }

have_server() { [ -x "${PG_BIN}/postgres" ] && [ -x "${PG_BIN}/initdb" ] && [ -x "${PG_BIN}/pg_ctl" ]; }
have_vector() { [ -f "${PG_SHARE}/extension/vector.control" ] && [ -f "/usr/lib/postgresql/${PG_MAJOR}/lib/vector.so" ]; }

if have_server && have_vector; then
  log "PostgreSQL ${PG_MAJOR} and pgvector are already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then exec sudo -E bash "$0" "$@"; fi
  log "must run as root (or with sudo) to install packages"; exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_update() { if [ "$apt_updated" -eq 0 ]; then apt-get update -qq; apt_updated=1; fi; }

if ! have_server; then
  log "installing the PostgreSQL ${PG_MAJOR} server"
  # The tests start their own clusters; Debian's default cluster is neither needed nor started.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/pgferry.conf
  apt_update
  apt-get install -y -qq --no-install-recommends "postgresql-${PG_MAJOR}" >/dev/null
fi

if ! have_vector; then
  log "building pgvector for PostgreSQL ${PG_MAJOR} from Debian's ${SRC_SUITE} source package"
  # Reuse the Debian mirror this machine is already configured with.
  mirror="$(grep -rhoE '^(URIs:|deb) +[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)"
  if [ -z "$mirror" ]; then log "no Debian mirror found in the apt sources"; exit 1; fi
  cat > /etc/apt/sources.list.d/pgferry-src.sources <<SRC
Types: deb-src
URIs: ${mirror}
Suites: ${SRC_SUITE}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  # Source entries never install binaries from the newer suite; only the source tarball is used.
  apt_updated=0; apt_update
  apt-get install -y -qq --no-install-recommends "postgresql-server-dev-${PG_MAJOR}" make gcc dpkg-dev >/dev/null
  work="$(mktemp -d)"; chmod 755 "$work"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get source -qq --download-only pgvector >/dev/null && dpkg-source -x --no-check ./pgvector_*.dsc src >/dev/null)
  make -s -C "$work/src" PG_CONFIG="${PG_BIN}/pg_config" OPTFLAGS="" >/dev/null
  make -s -C "$work/src" PG_CONFIG="${PG_BIN}/pg_config" install >/dev/null
fi

have_server && have_vector || { log "installation incomplete"; exit 1; }
log "ready: $("${PG_BIN}/postgres" --version), pgvector $(sed -nE "s/^default_version = '([^']+)'.*/\1/p" "${PG_SHARE}/extension/vector.control")"
