#!/bin/sh
# Runs every libFuzzer target in BIN_DIR for SECONDS each, corpus kept in build-fuzz/corpus/.
# Crashes are written to build-fuzz/artifacts/ and fail the run.
set -eu
bin=$1
seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
out=$(dirname "$bin")
mkdir -p "$out/corpus" "$out/artifacts"
status=0
for target in "$bin"/fuzz_*; do
  name=$(basename "$target")
  mkdir -p "$out/corpus/$name"
  seeds="$here/seeds/$name"
  [ "$name" = fuzz_grpc_server_session ] && seeds="$seeds $here/../fixtures/grpc"
  echo "== $name: ${seconds}s"
  # shellcheck disable=SC2086
  if ! "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$out/artifacts/$name-" "$out/corpus/$name" $seeds 2>"$out/$name.log"; then
    echo "$name: FAILED, see $out/$name.log and $out/artifacts/"
    status=1
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|cov:" "$out/$name.log" | tail -3 || true
done
exit $status
