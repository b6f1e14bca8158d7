#!/bin/sh
# First start on an empty volume: a cluster whose POSTGRES_USER (default postgres) owns
# POSTGRES_DB (default the user's name), password POSTGRES_PASSWORD, reachable over the network
# with scram-sha-256. Later starts use the cluster as it is.
set -eu
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 "$PGDATA" >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
fi
# The database, once (a start interrupted before it was made makes it on the next one).
if [ ! -e "$PGDATA/face-initialized" ]; then
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [ "$db" != "postgres" ] && ! psql -U "$user" -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    createdb --username="$user" --owner="$user" "$db"
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  touch "$PGDATA/face-initialized"
  echo "postgres: database $db owned by $user is ready"
fi
exec postgres
