#!/usr/bin/env bash
# Installs everything the project needs, only what is missing (with --test, also what the tests
# need beyond that): Rust targets, the Python
# environment (created by xtask), the models and the test photos. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

need() { command -v "$1" >/dev/null 2>&1 || { echo "setup: '$1' is required but not installed ($2)" >&2; exit 1; }; }
need cargo "install Rust with rustup"
need rustup "install Rust with rustup"
need python3 "install Python 3.11 or newer"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "setup: Python 3.11 or newer is required (tomllib), found $(python3 --version)" >&2; exit 1; }
need npm "install Node.js 20 or newer"

installed=$(rustup target list --installed)
for target in wasm32-wasip1 wasm32-wasip2 wasm32-unknown-unknown; do
  grep -qx "$target" <<<"$installed" || rustup target add "$target"
done
# The test command checks formatting and lints.
components=$(rustup component list --installed)
for component in rustfmt clippy; do
  grep -q "^$component" <<<"$components" || rustup component add "$component"
done

# Installs Debian packages $1 (a space-separated list) as root, or stops with what to do ($2).
apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's $1" >&2
    # shellcheck disable=SC2086 # $1 is a list of packages
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $1 >/dev/null
  else
    echo "setup: $1 is missing: $2" >&2
    exit 1
  fi
}

# Debian's Chromium, for the browser tests, wrk, for the bounded load test, and PostgreSQL, for the
# PostgreSQL store's tests (only with --test).
if [ "${1:-}" = "--test" ]; then
  if [ ! -x /usr/bin/chromium ] && [ -z "${FACE_CHROMIUM:-}" ]; then
    apt_install chromium "install Debian's chromium (apt-get install chromium) or set FACE_CHROMIUM to its path"
  fi
  command -v wrk >/dev/null || apt_install wrk "install Debian's wrk (apt-get install wrk)"
  # PostgreSQL's server programs: the PostgreSQL store's tests start throwaway clusters of their own.
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ -z "${FACE_PG_BIN:-}" ]; then
    apt_install postgresql "install Debian's postgresql (apt-get install postgresql) or set FACE_PG_BIN to the folder of initdb and pg_ctl"
  fi
  # The two-host check through a pooler in transaction mode (cargo xtask e2e --pgbouncer).
  command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || apt_install pgbouncer "install Debian's pgbouncer (apt-get install pgbouncer)"
  # The container image's checks (cargo xtask image-test): podman with runc (scripts/containers.conf),
  # and mmdebstrap, which makes the base image from Debian's packages where none can be pulled.
  # (netavark and aardvark-dns: the network and its names for compose.yaml's stack; iptables: published ports)
  command -v podman >/dev/null || apt_install "podman runc netavark aardvark-dns iptables slirp4netns uidmap" \
    "install podman (apt-get install podman runc) or run a Docker daemon"
  command -v runc >/dev/null || apt_install runc "install runc (apt-get install runc)"
  command -v mmdebstrap >/dev/null || apt_install mmdebstrap "install mmdebstrap (apt-get install mmdebstrap)"
fi

# Swagger UI's files, which face-server serves at /swagger (npm swagger-ui-dist, pinned by the lock file).
if [ ! -f host/swagger-ui/node_modules/swagger-ui-dist/swagger-ui-bundle.js ]; then
  echo "setup: Swagger UI assets" >&2
  (cd host/swagger-ui && npm ci --silent --no-audit --no-fund)
fi

echo "setup: models" >&2
cargo xtask models
echo "setup: test photos" >&2
cargo xtask testdata
