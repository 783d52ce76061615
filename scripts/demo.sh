#!/usr/bin/env bash
# Gets a user from a fresh Debian machine to a working PgProxy in front of PostgreSQL:
# starts a throwaway PostgreSQL, writes an example config, and runs pgproxy in the
# foreground. Ctrl+C stops the proxy; the throwaway server and its files go with it.
#
#   scripts/demo.sh                 # proxy on 127.0.0.1:6432, PostgreSQL on 127.0.0.1:55432
#   PROXY_PORT=7000 scripts/demo.sh
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
proxy_port="${PROXY_PORT:-6432}"
pg_port="${PG_PORT:-55432}"
# shellcheck source=lib/postgres.sh
source "$repo_root/scripts/lib/postgres.sh"
say() { printf 'demo: %s\n' "$*" >&2; }

pg_bin="$(newest_pg_bin)"
if [[ -z "$pg_bin" ]]; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
        say "installing PostgreSQL from Debian packages"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        pg_bin="$(newest_pg_bin)"
    else
        say "PostgreSQL is not installed: sudo apt-get install postgresql"
        exit 1
    fi
fi

work="$(mktemp -d /tmp/pgproxy-demo.XXXXXX)"
chmod 755 "$work"
[[ "$(id -u)" -eq 0 ]] && chown postgres "$work"
cleanup() {
    as_postgres "$pg_bin/pg_ctl" -D "$work/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

say "starting a throwaway PostgreSQL on 127.0.0.1:$pg_port (data in $work)"
as_postgres "$pg_bin/initdb" -D "$work/data" -A trust -U postgres --encoding=UTF8 --locale=C >/dev/null
as_postgres "$pg_bin/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $work" start >/dev/null

cat >"$work/config.yml" <<YAML
settings:
  log-level: info
  general-log: logs/general.log

instances:
  - listen:
      name: proxy
      host: 127.0.0.1
      port: $proxy_port
    redirect:
      name: postgresql
      host: 127.0.0.1
      port: $pg_port
YAML

say "building PgProxy"
dotnet build "$repo_root/src/PgProxy/PgProxy.csproj" -c Release -nologo -v q >/dev/null
say "PgProxy listens on 127.0.0.1:$proxy_port. In another terminal:"
say "    psql -h 127.0.0.1 -p $proxy_port -U postgres -c 'SELECT version()'"
say "Ctrl+C stops it."
dotnet "$repo_root/src/PgProxy/bin/Release/net10.0/pgproxy.dll" --config "$work/config.yml"
