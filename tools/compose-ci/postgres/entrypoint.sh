#!/bin/bash
# PostgreSQL of the CI stand-in image (tools/compose-ci.sh), after the official image's
# contract: a new PGDATA is initialised with POSTGRES_USER (postgres) and
# POSTGRES_PASSWORD, POSTGRES_DB is created, /docker-entrypoint-initdb.d/*.sh|*.sql run
# against a server on its socket only, then the server listens on every address.
set -euo pipefail
export POSTGRES_USER=${POSTGRES_USER:-postgres}
export POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
[[ ${1:-postgres} == postgres ]] || exec "$@"
shift || true

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  [[ -n ${POSTGRES_PASSWORD:-} ]] || { echo "POSTGRES_PASSWORD is required (as for the official image)" >&2; exit 1; }
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    -E UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  # Socket only while the init scripts run: the TCP health check fails until they are done.
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
  psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER")
  if [[ $POSTGRES_DB != postgres ]]; then "${psql[@]}" --dbname postgres -c "CREATE DATABASE \"$POSTGRES_DB\""; fi
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sh) echo "running $f" >&2; if [[ -x $f ]]; then "$f"; else . "$f"; fi ;;
      *.sql) echo "running $f" >&2; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
      *) [[ -e $f ]] && echo "ignoring $f" >&2 ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "PostgreSQL init process complete; ready for start up." >&2
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
