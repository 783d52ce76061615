# Shared by bench/hostile.sh and bench/soak.sh: what the kernel says about a process.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fd_count() { ls "/proc/$1/fd" | wc -l; }
thread_count() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
