# Shared by bench/login-cost.sh and bench/profile.sh: a throwaway PostgreSQL with ssl=on in a work folder, and the
# clean-up of it and of the proxy under test. Source scripts/lib/postgres.sh first.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# bench_work NAME: a new work folder the postgres user can write (PostgreSQL refuses to run as root).
bench_work() {
    local dir
    dir="$(mktemp -d "/tmp/pgproxy-$1.XXXXXX")"
    chmod 755 "$dir"
    [[ "$(id -u)" -eq 0 ]] && chown postgres "$dir"
    printf '%s' "$dir"
}

# bench_cleanup: stops the proxy ($proxy_pid, if set) and the server, and removes $work. Use it as the EXIT trap.
bench_cleanup() {
    [[ -n "${proxy_pid:-}" ]] && kill "$proxy_pid" 2>/dev/null || true
    as_postgres "$pg_bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}

# bench_initdb: a data folder in $work and a self-signed certificate for localhost and 127.0.0.1 (server.crt/key),
# which PgProxy's TLS instances can use too. Write pg_hba.conf after it to change who logs in how.
bench_initdb() {
    as_postgres "$pg_bin/initdb" -D "$work/data" -A trust -U postgres --encoding=UTF8 --locale=C >/dev/null
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$work/server.key" -out "$work/server.crt" >/dev/null 2>&1
    chmod 600 "$work/server.key"
    [[ "$(id -u)" -eq 0 ]] && chown postgres "$work/server.key" "$work/server.crt"
    # PgProxy's copy of the key, owned by the user PgProxy runs as: it refuses, as PostgreSQL does, a key another user owns.
    cp "$work/server.key" "$work/proxy.key" && chmod 600 "$work/proxy.key" && chown "$(id -u)" "$work/proxy.key"
    return 0
}

# bench_start_postgres PORT [MAX_CONNECTIONS]: starts the server of bench_initdb with ssl=on on 127.0.0.1:PORT.
bench_start_postgres() {
    as_postgres "$pg_bin/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $1 -k $work -c max_connections=${2:-100} -c fsync=off -c ssl=on -c ssl_cert_file=$work/server.crt -c ssl_key_file=$work/server.key" start >/dev/null
}
