# Shared by bench/hostile.sh and bench/soak.sh: what the kernel says about a process.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fd_count() { ls "/proc/$1/fd" | wc -l; }
thread_count() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
# Sockets, pipes, event fds and the like: what a session opens and must close. Files (the assemblies the runtime maps
# as code is first used) stay open for the process's life and are counted by fd_count only.
io_fd_count() { find "/proc/$1/fd" -type l -printf '%l\n' 2>/dev/null | grep -vc '^/' || true; }
