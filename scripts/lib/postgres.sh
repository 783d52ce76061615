# Shared by scripts/test.sh and scripts/demo.sh: finding PostgreSQL and running its
# programs as the postgres system user when we are root (PostgreSQL refuses root).

# The newest /usr/lib/postgresql/N/bin with an initdb, or nothing.
newest_pg_bin() {
    local bin best="" best_major=-1 major
    for bin in /usr/lib/postgresql/*/bin; do
        [[ -x "$bin/initdb" ]] || continue
        major="$(basename "$(dirname "$bin")")"
        [[ "$major" =~ ^[0-9]+$ ]] || continue
        if (( major > best_major )); then best="$bin"; best_major="$major"; fi
    done
    printf '%s' "$best"
}

# Runs a command as the postgres user when root, else as ourselves.
as_postgres() {
    if [[ "$(id -u)" -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}
