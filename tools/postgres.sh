#!/usr/bin/env bash
# A local PostgreSQL server for hnm's database tests (tests/testthat/test-sql.R).
#   tools/postgres.sh start   starts Debian's cluster (creating it if needed), creates the
#                             test role and database, waits until it accepts connections and
#                             prints `export HNM_PG_...=...` lines: eval "$(tools/postgres.sh start)"
#   tools/postgres.sh stop    stops the cluster if it is running.
# Both are idempotent. Runs the server commands as the postgres user (root or sudo needed).
# Progress goes to stderr, so stdout holds only the export lines.
set -euo pipefail
user="${HNM_PG_USER:-hnm}"
password="${HNM_PG_PASSWORD:-hnm}"
dbname="${HNM_PG_DBNAME:-hnm_test}"

say() { echo "postgres.sh: $*" >&2; }
# From /, which the postgres user can enter (psql complains about a working directory it cannot).
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then (cd / && su postgres -s /bin/sh -c "$1"); else (cd / && sudo -u postgres sh -c "$1"); fi
}
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
# Column `$1` of pg_lsclusters for our cluster: 3 is the port, 4 the status.
cluster_field() {
  pg_lsclusters -h | awk -v v="$version" -v c="$cluster" -v f="$1" '$1 == v && $2 == c { print $f }'
}
running() { [ -n "$cluster" ] && cluster_field 4 | grep -q online; }
psql_query() { as_postgres "psql -X -q -t -A -v ON_ERROR_STOP=1 -p $port -c \"$1\""; }

command -v pg_lsclusters >/dev/null 2>&1 || { say "PostgreSQL is not installed (tools/setup.sh installs it)"; exit 1; }
# Debian's newest installed major version, and its first cluster (`main` by default).
version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
cluster=$(pg_lsclusters -h | awk -v v="$version" '$1 == v { print $2; exit }')

case "${1:-}" in
  start)
    if [ -z "$cluster" ]; then
      cluster=main
      say "creating cluster $version/$cluster"
      as_root pg_createcluster "$version" "$cluster" >&2
    fi
    port=$(cluster_field 3)
    if ! running; then
      say "starting cluster $version/$cluster on port $port"
      as_root pg_ctlcluster "$version" "$cluster" start >&2
    fi
    for _ in $(seq 1 30); do
      pg_isready -q -h localhost -p "$port" && break
      sleep 1
    done
    pg_isready -q -h localhost -p "$port" || { say "the server did not accept connections"; exit 1; }
    if [ -z "$(psql_query "SELECT 1 FROM pg_roles WHERE rolname = '$user'")" ]; then
      psql_query "CREATE ROLE $user LOGIN PASSWORD '$password'" >&2
    fi
    if [ -z "$(psql_query "SELECT 1 FROM pg_database WHERE datname = '$dbname'")" ]; then
      psql_query "CREATE DATABASE $dbname OWNER $user" >&2
    fi
    say "ready: database $dbname for role $user on localhost:$port"
    echo "export HNM_PG_HOST=localhost HNM_PG_PORT=$port HNM_PG_USER=$user HNM_PG_PASSWORD=$password HNM_PG_DBNAME=$dbname"
    ;;
  stop)
    if running; then
      say "stopping cluster $version/$cluster"
      as_root pg_ctlcluster "$version" "$cluster" stop >&2
    fi
    ;;
  *)
    echo "usage: tools/postgres.sh start|stop" >&2
    exit 2
    ;;
esac
