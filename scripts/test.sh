#!/usr/bin/env bash
# The one test command: installs what the tests need when it can, builds once,
# runs every test project, and ends with one line "N passed, N failed".
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

note() { printf 'test.sh: %s\n' "$*" >&2; }

# --- (a) PostgreSQL, the hll extension and psql: the end-to-end tests start a real server.
# shellcheck source=lib/postgres.sh
source "$repo_root/scripts/lib/postgres.sh"

missing_prerequisites() {
    local bin missing=()
    bin="$(newest_pg_bin)"
    if [[ -z "$bin" ]]; then
        missing+=("PostgreSQL server (initdb)")
    elif [[ ! -f "$("$bin/pg_config" --sharedir)/extension/hll.control" ]]; then
        missing+=("hll extension")
    fi
    if [[ -z "$bin" || ! -x "$bin/psql" ]] && ! command -v psql >/dev/null 2>&1; then
        missing+=("psql")
    fi
    # PgProxy.Sql is generated from the parser's protobuf schema at build time and loads the library at run time.
    if [[ ! -f /usr/include/pg_query/pg_query.proto ]]; then
        missing+=("libpg-query-dev")
    fi
    # pgJDBC, a client library the end-to-end tests log in with beside Npgsql and libpq (run as a single-file
    # Java program, which needs the JDK's compiler).
    if [[ ! -f /usr/share/java/postgresql.jar ]]; then
        missing+=("libpostgresql-jdbc-java")
    fi
    if ! command -v javac >/dev/null 2>&1; then
        missing+=("default-jdk-headless")
    fi
    printf '%s\n' "${missing[@]+"${missing[@]}"}"
}

package_exists() { apt-cache show "$1" >/dev/null 2>&1; }

missing="$(missing_prerequisites)"
if [[ -n "$missing" ]]; then
    pg_bin="$(newest_pg_bin)"
    # hll is built per server version: match the server that is (or will be) installed.
    pg_major="15"
    [[ -n "$pg_bin" ]] && pg_major="$(basename "$(dirname "$pg_bin")")"
    hll_package="postgresql-${pg_major}-hll"
    if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        note "missing: $(tr '\n' ',' <<<"$missing" | sed 's/,$//; s/,/, /g')"
        note "install them, e.g.: sudo apt-get install postgresql $hll_package libpg-query-dev libpostgresql-jdbc-java default-jdk-headless"
        exit 1
    fi
    note "installing what the tests need (missing: $(tr '\n' ',' <<<"$missing" | sed 's/,$//; s/,/, /g'))"
    apt-get update -qq
    packages=(postgresql)
    if package_exists "$hll_package"; then
        packages+=("$hll_package")
    else
        note "$hll_package is not available from apt: tests that need hll will not run"
    fi
    packages+=(libpg-query-dev)
    [[ -f /usr/share/java/postgresql.jar ]] || packages+=(libpostgresql-jdbc-java)
    command -v javac >/dev/null 2>&1 || packages+=(default-jdk-headless)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    still_missing="$(missing_prerequisites | grep -v '^hll extension$' || true)"
    if [[ -n "$still_missing" ]]; then
        note "still missing after apt-get install: $still_missing"
        exit 1
    fi
fi

# --- (a2) systemd-analyze, with which the package tests check the packaged unit (Debian's systemd package; a
# container often lacks it). Only as root, where those tests run: they install the .deb into the machine.
if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1 && ! command -v systemd-analyze >/dev/null 2>&1; then
    note "installing systemd (systemd-analyze verify checks the packaged unit)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

# --- (a3) ip and tc (iproute2), with which NetworkFaultTests puts PostgreSQL behind a veth pair with netem. Only as
# root, where that test runs.
if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1 && ! { command -v ip && command -v tc; } >/dev/null 2>&1; then
    note "installing iproute2 (ip netns and tc netem for the network fault test)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2 >/dev/null
fi

# --- (b) build once.
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
if ! dotnet build PgProxy.slnx -c Release -nologo -v q; then
    note "build failed: no tests ran"
    exit 1
fi

# --- (b2) the packages, once per run (binaries, .deb, dotnet tool: 5 to 10 minutes on 2 cores, most of it the
# linux-x64 publish, which builds the libraries again apart from the solution's bin/obj): the package tests
# install and run what scripts/package.sh wrote instead of building it themselves.
if ! scripts/package.sh; then
    note "scripts/package.sh failed: no tests ran"
    exit 1
fi
export PGPROXY_PACKAGE_ARTIFACTS="$repo_root/artifacts"

# --- (c) run every test project; trx files carry the counts to total.
results_dir="$repo_root/TestResults/test.sh"
rm -rf "$results_dir"
mkdir -p "$results_dir"
test_status=0
# PgProxyTestResultsRoot gives each project its own folder (Directory.Build.props):
# test projects of one solution run in parallel and would race for one trx name.
dotnet test PgProxy.slnx -c Release --no-build -nologo \
    -p:PgProxyTestResultsRoot="$results_dir" --logger "trx;LogFileName=results.trx" || test_status=$?

# --- (c2) the 3-minute soak (bench/soak.sh, issue 16): one test in the totals, passed when the script exits 0. It
# runs after the test projects so that their load does not count against its RSS and latency figures.
soak_passed=0
soak_failed=0
if SOAK_NO_BUILD=1 OUT="$results_dir/soak" bench/soak.sh 180 >"$results_dir/soak.log" 2>&1; then
    soak_passed=1
else
    soak_failed=1
    note "bench/soak.sh 180 failed (the soak's summary below; the whole log is $results_dir/soak.log)"
    tail -n 25 "$results_dir/soak.log" >&2
fi

# --- (d) one totals line over all test projects, and the soak.
passed=$soak_passed
failed=$soak_failed
shopt -s nullglob
trx_files=("$results_dir"/*/*.trx)
for trx in "${trx_files[@]}"; do
    counters="$(grep -o '<Counters [^>]*>' "$trx" | head -n 1 || true)"
    [[ -n "$counters" ]] || continue
    count_of() { sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p" <<<"$counters"; }
    passed=$(( passed + $(count_of passed) ))
    # A test that errored (e.g. its fixture failed) counts as failed.
    failed=$(( failed + $(count_of failed) + $(count_of error) + $(count_of timeout) + $(count_of aborted) ))
done

if (( test_status != 0 && failed == 0 )); then
    note "dotnet test exited with $test_status without a failed test in the results (a test host crashed?)"
fi
echo "$passed passed, $failed failed"
if (( test_status != 0 || failed > 0 )); then
    exit 1
fi
