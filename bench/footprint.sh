#!/usr/bin/env bash
# Start-up time to listening and resident memory of one PgProxy process, for three configurations: no plugins,
# the built-in TableauHll (a compiled plugin), and one small C# source plugin (plugins/examples/block_ddl.cs).
#
#   bench/footprint.sh                       the build tree: dotnet src/PgProxy/bin/Release/net10.0/pgproxy.dll
#   PGPROXY=artifacts/linux-x64/pgproxy bench/footprint.sh    a published binary (scripts/package.sh)
#   RUNS=5 bench/footprint.sh                runs per case (default 3; the median is printed)
#
# Each run starts pgproxy, times it from the fork to its "Instance proxy listening" log line, reads VmRSS from
# /proc at that moment and again 2 s later (after the start-up's garbage is collected), then stops it with SIGTERM.
# The source-plugin case runs twice: with an empty plugin cache (compiles) and with the cache the first run left.
# No PostgreSQL is needed: nothing connects.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${RUNS:-3}"
if [[ -n "${PGPROXY:-}" ]]; then
    command=("$PGPROXY")
else
    command=(dotnet "$repo_root/src/PgProxy/bin/Release/net10.0/pgproxy.dll")
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export DOTNET_BUNDLE_EXTRACT_BASE_DIR="$work/bundle"
cp "$repo_root/plugins/examples/block_ddl.cs" "$work/"

write_config() { # name plugin-yaml intercept-yaml
    cat >"$work/$1.yml" <<YAML
$2
settings:
  log-level: info
  plugin-dir: .
instances:
  - listen: {name: proxy, host: 127.0.0.1, port: 0}
    redirect: {name: postgresql, host: 127.0.0.1, port: 5432}
$3
YAML
}
write_config plain "" ""
write_config tableau_hll "plugins: [tableau_hll]" "    intercept: {commands: {queries: [{plugin: tableau_hll, function: rewrite_query}]}}"
write_config source "plugins: [block_ddl]" "    intercept: {commands: {queries: [{plugin: block_ddl, function: block_ddl}]}}"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

one_run() { # config -> "ms rss_at_listen_kb rss_after_2s_kb"
    local log="$work/run.log" start pid now
    : >"$log"
    start=$(date +%s%N)
    "${command[@]}" --config "$work/$1.yml" >"$log" 2>&1 &
    pid=$!
    # A benchmark script may poll: every 2 ms, for at most 60 s.
    for _ in $(seq 30000); do
        grep -q "Instance proxy listening" "$log" && break
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; return 1; }
        sleep 0.002
    done
    now=$(date +%s%N)
    local at_listen after
    at_listen="$(rss_kb "$pid")"
    sleep 2
    after="$(rss_kb "$pid")"
    kill -TERM "$pid"
    wait "$pid" || true
    echo "$(( (now - start) / 1000000 )) $at_listen $after"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

report() { # label config [keep-cache]
    local results=() i
    for ((i = 0; i < runs; i++)); do
        [[ "${3:-}" == keep ]] || rm -rf "$work/.pgproxy-plugin-cache"
        results+=("$(one_run "$2")")
    done
    local ms rss settled
    ms="$(printf '%s\n' "${results[@]}" | cut -d' ' -f1 | median)"
    rss="$(printf '%s\n' "${results[@]}" | cut -d' ' -f2 | median)"
    settled="$(printf '%s\n' "${results[@]}" | cut -d' ' -f3 | median)"
    printf '| %-32s | %6s ms | %4s MB | %4s MB |\n' "$1" "$ms" "$((rss / 1024))" "$((settled / 1024))"
}

one_run plain >/dev/null # a first run unpacks a single-file bundle: not counted
echo "${command[*]}, median of $runs runs"
echo "| configuration                    | to listen | RSS at listen | RSS 2 s later |"
echo "|----------------------------------|-----------|---------------|---------------|"
report "no plugins" plain
report "tableau_hll (compiled)" tableau_hll
report "block_ddl.cs (source, compiled)" source
report "block_ddl.cs (source, cached)" source keep
