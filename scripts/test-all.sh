#!/usr/bin/env bash
# Run every test of the project: the single entry point for developers and CI.
#
#   1. cargo build --bin kinesin && cargo test --workspace
#   2. Python end-to-end suites (boto3 + AWS CLI v1) in ./.venv from tests/python/requirements.txt
#   3. JavaScript end-to-end suites (@aws-sdk/client-kinesis v3) with node --test, deps from
#      tests/js/package-lock.json
#
# Every part runs even if an earlier one failed; the script exits non-zero if any part failed
# and ends with a one-line summary. Safe to rerun (the venv and node_modules are reused when
# their pinned inputs did not change).
#
# Environment:
#   PYTHON                 interpreter used to create .venv (default: python3)
#   PYTEST_ARGS            extra arguments for pytest, split on whitespace (e.g. "-k records -x")
#   KINESIN_TEST_ENDPOINT  run the Python/JS suites against an already-running server
#   KINESIN_BIN            server binary used by the suites (default: target/debug/kinesin)
#   SKIP_CARGO=1           skip part 1 (e.g. while iterating on the end-to-end suites)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

PYTHON="${PYTHON:-python3}"
LOG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/kinesin-test-all.XXXXXX")"
trap 'rm -rf "$LOG_DIR"' EXIT
export PYTHONDONTWRITEBYTECODE=1
export NO_COLOR=1
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

TOTAL_PASSED=0
TOTAL_FAILED=0
STATUS_LINES=()
OVERALL=0

banner() { printf '\n==== %s ====\n' "$*"; }

# run_part NAME PARSER COMMAND...  — runs COMMAND with output teed to a log, records status,
# duration and the test counts found by PARSER (cargo|pytest|node|none) in the log.
run_part() {
  local name="$1" parser="$2"
  shift 2
  banner "$name: $*"
  local log="$LOG_DIR/$name.log" start end rc
  start=$(date +%s)
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  end=$(date +%s)
  local passed=0 failed=0
  case "$parser" in
    cargo)
      passed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' "$log" |
        awk '{p+=$4; f+=$6} END {print p+0}')
      failed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' "$log" |
        awk '{p+=$4; f+=$6} END {print f+0}')
      ;;
    pytest)
      local last
      last=$(grep -E '[0-9]+ (passed|failed|error|errors|skipped|deselected)' "$log" | grep -E ' in [0-9.]+s' | tail -1)
      passed=$(grep -Eo '[0-9]+ passed' <<<"$last" | awk '{print $1}')
      failed=$(grep -Eo '[0-9]+ (failed|errors?)' <<<"$last" | awk '{s+=$1} END {print s+0}')
      ;;
    node)
      passed=$(grep -E '^(# |ℹ )pass [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+$')
      failed=$(grep -E '^(# |ℹ )(fail|cancelled) [0-9]+' "$log" | tail -2 | grep -Eo '[0-9]+$' | awk '{s+=$1} END {print s+0}')
      ;;
  esac
  passed=${passed:-0}
  failed=${failed:-0}
  # a part that failed without reporting failing tests (build error, install error, crash) counts as one failure
  if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
  TOTAL_PASSED=$((TOTAL_PASSED + passed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
  local verdict=ok
  if [ "$rc" -ne 0 ]; then verdict="FAILED (exit $rc)"; OVERALL=1; fi
  STATUS_LINES+=("$(printf '%-14s %-18s %5ss  tests: %s passed, %s failed' "$name" "$verdict" "$((end - start))" "$passed" "$failed")")
  return "$rc"
}

# ---------------------------------------------------------------------------- 1. cargo
BUILD_OK=1
if [ "${SKIP_CARGO:-0}" != "1" ]; then
  run_part cargo-build none cargo build --bin kinesin || BUILD_OK=0
  run_part cargo-test cargo cargo test --workspace --no-fail-fast
else
  echo "SKIP_CARGO=1: not building or running cargo tests"
fi
if [ "$BUILD_OK" -eq 0 ] && [ -z "${KINESIN_TEST_ENDPOINT:-}" ]; then
  echo "WARNING: cargo build failed; the end-to-end suites run against whatever binary exists (if any)."
fi

# ---------------------------------------------------------------------------- 2. python
setup_venv() {
  local venv="$ROOT/.venv" req="$ROOT/tests/python/requirements.txt" stamp
  if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "removing broken virtualenv $venv"
    rm -rf "$venv"
  fi
  if [ ! -x "$venv/bin/python" ]; then
    "$PYTHON" -m venv "$venv" || return 1
  fi
  stamp="$("$venv/bin/python" -c 'import sys; print(sys.version)' | sha256sum | cut -c1-16)-$(sha256sum "$req" | cut -c1-16)"
  if [ -f "$venv/.kinesin-requirements" ] && [ "$(cat "$venv/.kinesin-requirements")" = "$stamp" ]; then
    echo "virtualenv up to date ($venv)"
    return 0
  fi
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" || return 1
  echo "$stamp" >"$venv/.kinesin-requirements"
  "$venv/bin/python" -m pip list --disable-pip-version-check 2>/dev/null | grep -Ei '^(boto3|botocore|awscli|pytest) '
}

run_pytest() {
  # shellcheck disable=SC2086
  "$ROOT/.venv/bin/python" -m pytest tests/python -q ${PYTEST_ARGS:-}
  local rc=$?
  if [ "$rc" -eq 5 ]; then echo "pytest collected no tests"; fi
  return "$rc"
}

if run_part python-setup none setup_venv; then
  run_part pytest pytest run_pytest
else
  STATUS_LINES+=("$(printf '%-14s %-18s' pytest 'NOT RUN (setup failed)')")
fi

# ---------------------------------------------------------------------------- 3. javascript
setup_node() {
  cd "$ROOT/tests/js" || return 1
  node --version
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  else
    npm install --no-audit --no-fund --loglevel=error
  fi
}

if run_part js-setup none setup_node; then
  run_part node-test node node --test --test-concurrency=1 tests/js/
else
  STATUS_LINES+=("$(printf '%-14s %-18s' node-test 'NOT RUN (setup failed)')")
fi
cd "$ROOT"

# ---------------------------------------------------------------------------- summary
banner "summary"
for line in "${STATUS_LINES[@]}"; do echo "$line"; done
if [ "$OVERALL" -eq 0 ]; then
  echo "test-all: OK"
else
  echo "test-all: FAILED"
fi
echo "summary: ${TOTAL_PASSED} passed, ${TOTAL_FAILED} failed"
exit "$OVERALL"
