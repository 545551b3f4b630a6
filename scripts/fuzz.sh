#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build-fuzz/ and runs each for N seconds (default 60):
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]      targets: metadata args image idx npz
# Each run starts from fuzz/seeds/<target>/ plus the kept regressions, grows its corpus in
# build-fuzz/corpus/<target>/, and writes any crashing input to build-fuzz/findings/<target>/.
# Keep a finding: copy it to tests/data/fuzz_regressions/<target>/ (fuzz_regression_test replays
# it), then fix the parser. Exit status is non-zero if any target found something.
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
shift || true
TARGETS=${*:-metadata args image idx npz}
CC=${CC:-clang} CXX=${CXX:-clang++} cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSCOREFLOW_FUZZ=ON -DSCOREFLOW_BUILD_TESTS=OFF -DSCOREFLOW_BUILD_CLI=OFF >/dev/null || exit 1
cmake --build build-fuzz --target fuzz_targets -j "$(nproc)" || exit 1
status=0
for t in $TARGETS; do
  corpus=build-fuzz/corpus/$t findings=build-fuzz/findings/$t
  mkdir -p "$corpus" "$findings"
  dirs=("$corpus" "fuzz/seeds/$t")
  [ -d "tests/data/fuzz_regressions/$t" ] && dirs+=("tests/data/fuzz_regressions/$t")
  echo "== fuzz_$t for ${SECONDS_EACH}s" >&2
  # -rss_limit_mb: a lying header that makes a reader allocate gigabytes is a finding too.
  ./build-fuzz/fuzz/fuzz_"$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$findings/" -print_final_stats=1 "${dirs[@]}" 2>build-fuzz/fuzz_"$t".log
  rc=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY)' build-fuzz/fuzz_"$t".log >&2
  echo "   corpus: $(ls "$corpus" | wc -l) inputs; findings: $(ls "$findings" | wc -l); exit $rc" >&2
  [ $rc -eq 0 ] || status=1
done
exit $status
