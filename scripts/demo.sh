#!/usr/bin/env bash
# Gets a user from a fresh Debian machine to a working PgProxy in front of PostgreSQL:
# starts a throwaway PostgreSQL with a table of hll columns, writes the original
# proxy's configuration (the tableau_hll plugin rewriting Tableau's distinct counts),
# and runs pgproxy in the foreground. Ctrl+C stops the proxy; the throwaway server and
# its files go with it.
#
#   scripts/demo.sh                 # proxy on 127.0.0.1:6432, PostgreSQL on 127.0.0.1:55432
#   PROXY_PORT=7000 scripts/demo.sh
#   DEMO_CHECK=1 scripts/demo.sh    # run Tableau's query through the proxy, compare, and exit
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
proxy_port="${PROXY_PORT:-6432}"
pg_port="${PG_PORT:-55432}"
# shellcheck source=lib/postgres.sh
source "$repo_root/scripts/lib/postgres.sh"
say() { printf 'demo: %s\n' "$*" >&2; }

# PostgreSQL, the hll extension and libpg_query (for the plugin), from Debian's packages.
pg_bin="$(newest_pg_bin)"
needs_install() {
    [[ -z "$pg_bin" ]] && return 0
    [[ -f "$("$pg_bin/pg_config" --sharedir)/extension/hll.control" ]] || return 0
    [[ -e /usr/lib/x86_64-linux-gnu/libpg_query.so.1504.0 || -e /usr/lib/aarch64-linux-gnu/libpg_query.so.1504.0 || -f /usr/include/pg_query/pg_query.proto ]] || return 0
    return 1
}
if needs_install; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
        say "installing PostgreSQL, hll and libpg_query from Debian packages"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-15-hll libpg-query-dev >/dev/null
        pg_bin="$(newest_pg_bin)"
    else
        say "missing packages: sudo apt-get install postgresql postgresql-15-hll libpg-query-dev"
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

psql_pg() { as_postgres "$pg_bin/psql" -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
say "creating crm_dim.crm_data_source, a table of hll sets as a BI extract would hold them"
psql_pg <<'SQL'
CREATE EXTENSION hll;
CREATE SCHEMA crm_dim;
CREATE TABLE crm_dim.crm_data_source ("Campaign Name" text, "Set of Customers" hll);
INSERT INTO crm_dim.crm_data_source
SELECT 'campaign ' || (day % 3), hll_add_agg(hll_hash_integer(customer))
FROM generate_series(1, 30) AS day, LATERAL generate_series(day * 40, day * 40 + 200) AS customer
GROUP BY day;
SQL
answer="$(psql_pg -At -c 'SELECT hll_cardinality(hll_union_agg("Set of Customers"))::bigint FROM crm_dim.crm_data_source')"

# The original proxy's configuration, shipped beside the plugin, on the demo's ports and logging at info.
sed -e "s/port: 5111/port: $proxy_port/" -e "s/port: 5432/port: $pg_port/" -e "s/log-level: debug/log-level: info/" \
    "$repo_root/plugins/TableauHll/config.yml" >"$work/config.yml"

tableau_query='SELECT COUNT(DISTINCT "crm_data_source"."Set of Customers") AS "ctd:Set of Customers:ok" FROM "crm_dim"."crm_data_source" "crm_data_source" HAVING (COUNT(1) > 0);'

say "building PgProxy"
dotnet build "$repo_root/src/PgProxy/PgProxy.csproj" -c Release -nologo -v q >/dev/null
pgproxy=("dotnet" "$repo_root/src/PgProxy/bin/Release/net10.0/pgproxy.dll" --config "$work/config.yml")

if [[ "${DEMO_CHECK:-}" == "1" ]]; then
    "${pgproxy[@]}" >"$work/pgproxy.out" 2>&1 &
    proxy_pid=$!
    for _ in $(seq 100); do
        psql_proxy=("$pg_bin/psql" -X -At -h 127.0.0.1 -p "$proxy_port" -U postgres -d postgres)
        "${psql_proxy[@]}" -c 'SELECT 1' >/dev/null 2>&1 && break
        kill -0 "$proxy_pid" 2>/dev/null || { cat "$work/pgproxy.out" >&2; exit 1; }
        sleep 0.1
    done
    got="$("${psql_proxy[@]}" -c "$tableau_query")"
    kill -TERM "$proxy_pid"; wait "$proxy_pid" || true
    say "Tableau's query through PgProxy: $got; hll_cardinality(hll_union_agg(...)) directly: $answer"
    [[ "$got" == "$answer" ]] || { say "MISMATCH"; exit 1; }
    say "ok"
    exit 0
fi

say "PgProxy listens on 127.0.0.1:$proxy_port with the tableau_hll plugin. In another terminal, Tableau's query:"
say "    psql -h 127.0.0.1 -p $proxy_port -U postgres -c '$tableau_query'"
say "answers $answer, which is hll_cardinality(hll_union_agg(\"Set of Customers\")): the distinct customers."
say "Directly on PostgreSQL (port $pg_port) the same query fails: hll has no equality operator."
say "Ctrl+C stops it."
"${pgproxy[@]}"
