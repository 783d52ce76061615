#!/usr/bin/env bash
# Coverage-guided fuzzing of one target with afl++ and SharpFuzz, for SECONDS (default 600), at low priority.
#   fuzz/run.sh TARGET [SECONDS]      targets: framing startup frontend backend scram config sql
#   PGPROXY_FUZZ_EXECS=10000000 fuzz/run.sh TARGET [SECONDS]
#                                     stop after about that many executions (afl-fuzz -E), and after SECONDS only
#                                     when given; the count includes those of the run resumed.
#   PGPROXY_FUZZ_MAXLEN=2048          cap the inputs afl generates (afl-fuzz -G): the sql target's cost grows with
#                                     the text's length, and afl's splices grow it.
# A second run of a target resumes its output dir, fuzz/out/TARGET (afl-fuzz -i -), with its corpus and counts;
# PGPROXY_FUZZ_FRESH=1 starts over from the seeds instead.
# Needs: apt-get install afl++; dotnet tool install -g SharpFuzz.CommandLine (2.3.0).
# Findings go to fuzz/out/TARGET (not committed); turn each crash into a seed under fuzz/corpus/TARGET, which the
# CI replay (tests/PgProxy.Protocol.Tests/Fuzzing) runs, and fix it.
set -euo pipefail
target=${1:?usage: fuzz/run.sh TARGET [SECONDS]}
execs=${PGPROXY_FUZZ_EXECS:-}
seconds=${2:-}
if [ -z "$seconds" ] && [ -z "$execs" ]; then seconds=600; fi
root=$(cd "$(dirname "$0")/.." && pwd)
work=${PGPROXY_FUZZ_WORK:-/tmp/pgproxy-fuzz}
command -v afl-fuzz >/dev/null || { echo "afl-fuzz not found: apt-get install afl++" >&2; exit 1; }
sharpfuzz=$(command -v sharpfuzz || echo "$HOME/.dotnet/tools/sharpfuzz")
[ -x "$sharpfuzz" ] || { echo "sharpfuzz not found: dotnet tool install -g SharpFuzz.CommandLine --version 2.3.0" >&2; exit 1; }

# The build and the seeds at low priority too: the machine may be running someone's benchmark.
nice -n 19 dotnet build "$root/fuzz/PgProxy.Fuzz" -c Release -nologo -v q
rm -rf "$work/bin" && mkdir -p "$work" && cp -r "$root/fuzz/PgProxy.Fuzz/bin/Release/net10.0" "$work/bin"
# The seeds first: an instrumented assembly runs only under afl-fuzz (it writes afl's shared coverage map).
rm -rf "$work/seeds" && nice -n 19 dotnet "$work/bin/PgProxy.Fuzz.dll" make-corpus "$work/seeds"
# Instrument what the target decodes: the protocol assembly, the engine's configuration loader, or PgProxy.Sql's own
# code (not the protobuf types generated into the same assembly, nor libpg_query, which is native).
if [ "$target" = config ]; then
  "$sharpfuzz" "$work/bin/PgProxy.Core.dll" PgProxy.Core.Configuration
  "$sharpfuzz" "$work/bin/YamlDotNet.dll"
elif [ "$target" = sql ]; then
  "$sharpfuzz" "$work/bin/PgProxy.Sql.dll" PgProxy.Sql
else
  "$sharpfuzz" "$work/bin/PgProxy.Protocol.dll"
fi
input="$work/seeds/$target"
if [ -d "$root/fuzz/corpus/$target" ]; then cp "$root/fuzz/corpus/$target"/* "$input"/ 2>/dev/null || true; fi
out="$root/fuzz/out/$target"
limits=()
if [ -n "$execs" ]; then limits+=(-E "$execs"); fi
if [ -n "$seconds" ]; then limits+=(-V "$seconds"); fi
if [ -n "${PGPROXY_FUZZ_MAXLEN:-}" ]; then limits+=(-G "$PGPROXY_FUZZ_MAXLEN"); fi
if [ -f "$out/default/fuzzer_stats" ] && [ "${PGPROXY_FUZZ_FRESH:-0}" != 1 ]; then
  input=-
else
  rm -rf "$out"
fi
dictionary=()
if [ -f "$root/fuzz/$target.dict" ]; then dictionary=(-x "$root/fuzz/$target.dict"); fi
mkdir -p "$root/fuzz/out"
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_SKIP_BIN_CHECK=1
nice -n 19 afl-fuzz "${limits[@]}" "${dictionary[@]}" -t 10000 -m none -i "$input" -o "$out" -- dotnet "$work/bin/PgProxy.Fuzz.dll" "$target"
grep -E "start_time|last_update|execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs|run_time|edges_found|total_edges|bitmap_cvg" "$out/default/fuzzer_stats"
