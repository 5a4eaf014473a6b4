#!/usr/bin/env bash
# Contract check: the running reference server against its committed OpenAPI document.
#
# Schemathesis (PyPI, pinned below) generates requests from `samokoder-server/openapi.json` — the
# committed file, not the one the binary would print, so drift between code and file is caught by
# the openapi drift test and what clients build against is what gets checked here — sends them to
# a real `samokoder-server` and fails on any 5xx and on any response the document does not
# describe (status code, content type, headers, body schema).
#
# Run from anywhere after `cargo test --workspace --all-features` (which builds
# target/debug/samokoder-server with the workspace's one feature set). This script never runs
# cargo: a build with another feature set would rebuild most of the graph. Set
# SAMOKODER_SERVER_BIN to test another binary.
#
# Knobs (environment): CONTRACT_MAX_EXAMPLES (per operation and phase, default 100; about 1.5
# minutes on 2 cores with the debug build), CONTRACT_CHECKS (comma-separated, see below),
# CONTRACT_WORKERS (default 2), CONTRACT_SEED (default: fixed, so a CI failure reproduces
# locally; set `random` for a fresh one).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SCHEMATHESIS_VERSION=4.32.5
SPEC=${CONTRACT_SPEC:-$ROOT/samokoder-server/openapi.json}
BIN=${SAMOKODER_SERVER_BIN:-$ROOT/target/debug/samokoder-server}
VENV=$ROOT/target/contract-venv
REPORT_DIR=$ROOT/target/contract-report
MAX_EXAMPLES=${CONTRACT_MAX_EXAMPLES:-100}
WORKERS=${CONTRACT_WORKERS:-2}
SEED=${CONTRACT_SEED:-20261127}

say() { printf '\n==> contract: %s\n' "$*"; }
die() { printf 'contract: %s\n' "$*" >&2; exit 1; }

# --- the binary -----------------------------------------------------------------------------
[ -x "$BIN" ] || die "$BIN is missing: run \`cargo test --workspace --all-features\` (or cargo build -p samokoder-server --all-features) first"
# A stale binary would test old code against the new document; say so loudly, but go on (in CI
# the binary was just built by the test step).
stale=$(find samokoder-server/src samokoder-core/src samokoder-auth/src samokoder-store/src \
    -name '*.rs' -newer "$BIN" -print -quit 2>/dev/null || true)
if [ -n "$stale" ]; then
    echo "contract: WARNING: $BIN is older than $stale; rebuild for a meaningful result" >&2
fi

# --- schemathesis, in a venv cached under target/ ---------------------------------------------
if [ "$("$VENV/bin/st" --version 2>/dev/null || true)" != "st, version $SCHEMATHESIS_VERSION" ]; then
    say "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
"$VENV/bin/st" --version

# --- a fresh server ---------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/samokoder-contract.XXXXXX")
SERVER_PID=""
cleanup() {
    status=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ -f "$WORK/server.log" ]; then
        echo "contract: last lines of the server log ($WORK/server.log kept):" >&2
        tail -n 40 "$WORK/server.log" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT

# Test environment: a fresh SQLite database in $WORK, generated secrets, cheap argon2 (the
# contract is about shapes, not hashing cost; registrations are fuzzed and each one hashes).
export SAMOKODER_ENV=test
export SAMOKODER_LISTEN=127.0.0.1:$PORT
export SAMOKODER_DATA_DIR=$WORK/data
export SAMOKODER_LOG__FORMAT=compact
export SAMOKODER_LOG__FILTER=${SAMOKODER_LOG__FILTER:-warn}
export SAMOKODER_AUTH__PASSWORD_HASH__MEMORY_KIB=1024
export SAMOKODER_AUTH__PASSWORD_HASH__ITERATIONS=1
export SAMOKODER_AUTH__PASSWORD_HASH__PARALLELISM=1
# The access token must outlive the run.
export SAMOKODER_AUTH__ACCESS_TTL_SECS=7200
export SAMOKODER_AUTH__REFRESH_TTL_SECS=86400
# The limiter stays on (its 429s are part of the contract) but high enough that the fuzzer is
# not answered 429 for everything after the first few requests: that would test the limiter
# only, and hide the routes behind it.
export SAMOKODER_RATE_LIMIT__ENABLED=true
export SAMOKODER_RATE_LIMIT__AUTH_PER_MINUTE=100000
export SAMOKODER_RATE_LIMIT__GENERAL_PER_MINUTE=100000
unset SAMOKODER_DATABASE_URL SAMOKODER_REDIS_URL SAMOKODER_CONFIG

EMAIL=contract@example.com
PASSWORD='Contract-Test-Passw0rd!x'
mkdir -p "$SAMOKODER_DATA_DIR"
# The fuzzing account: created with the admin command so it can be an administrator on the
# team tier, which lets the admin route and the quota-limited routes answer their success
# cases instead of only 403 / 402.
printf '%s\n' "$PASSWORD" | "$BIN" admin create-user --email "$EMAIL" --tier team --admin \
    >"$WORK/create-user.log" 2>&1 || { cat "$WORK/create-user.log" >&2; die "cannot create the fuzzing user"; }

say "starting $BIN on $BASE (data in $SAMOKODER_DATA_DIR)"
"$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 300); do
    curl -fsS -o /dev/null "$BASE/health" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited during start-up"
    sleep 0.1
done
curl -fsS -o /dev/null "$BASE/health" || die "the server did not answer /health within 30 s"

# A fresh access token for the account (each login is a new session).
login() {
    curl -fsS -X POST "$BASE/v1/auth/login" -H 'Content-Type: application/json' \
        --data "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

# --- schemathesis ------------------------------------------------------------------------------
# Every check of schemathesis but one. The five that make "no server error, no response outside
# the spec" (not_a_server_error, status_code_conformance, content_type_conformance,
# response_schema_conformance, response_headers_conformance) plus those that also hold here:
# negative_data_rejection (a request the spec forbids is refused), ignored_auth (a route that
# declares security refuses requests without it), use_after_free and
# ensure_resource_availability (a deleted resource is gone, a created one can be read),
# missing_required_header, unsupported_method and allow_header_conformance (405 with `Allow`).
#
# Left out, on purpose: positive_data_acceptance, which fails whenever a schema-valid request
# gets a 4xx. Many rules of the API are not expressible in JSON Schema or depend on state, and
# answer 4xx by design to requests the schema allows: `from` after `to` (422 invalid_range), the
# password policy's character classes, an update with no field (400 no_update), the plan's
# project quota (402), unknown credentials at login and a wrong current password (400).
CHECKS=${CONTRACT_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection,ignored_auth,use_after_free,ensure_resource_availability,missing_required_header,unsupported_method,allow_header_conformance}
rm -rf "$REPORT_DIR"
mkdir -p "$REPORT_DIR"
failed=0

run_st() { # run_st NAME TOKEN [extra st args...]
    local name=$1 token=$2
    shift 2
    say "schemathesis: $name"
    local seed_args=()
    [ "$SEED" = random ] || seed_args=(--seed "$SEED")
    # From $WORK, where schemathesis keeps its cache (.schemathesis/), not the repository.
    (cd "$WORK" && "$VENV/bin/st" --no-color run "$SPEC" \
        --url "$BASE" \
        --header "Authorization: Bearer $token" \
        --checks "$CHECKS" \
        --max-examples "$MAX_EXAMPLES" \
        --workers "$WORKERS" \
        --request-timeout 30 \
        --generation-database none \
        --suppress-health-check too_slow,filter_too_much,data_too_large \
        --report junit,har --report-junit-path "$REPORT_DIR/$name.xml" --report-har-path "$REPORT_DIR/$name.har" \
        "${seed_args[@]}" \
        "$@") || failed=1
}

# Pass 1: every operation except the three that end the fuzzing account's session or change its
# password. Run in the middle of the pass, they would turn the rest of the run into a test of
# the 401 answer.
SESSION_ENDING='^/v1/auth/(logout|logout-all|change-password)$'
TOKEN=$(login) || die "cannot log in as $EMAIL"
# Were the token refused, every operation would be answered 401, which the spec documents: the
# run would pass and test nothing.
curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$BASE/v1/auth/me" ||
    die "GET /v1/auth/me refuses the fuzzing account's token"
run_st main "$TOKEN" --exclude-path-regex "$SESSION_ENDING"

# Pass 2: those three, each with its own fresh session, after everything else. The first
# request of each may end the session; the rest then check the documented 401.
for path in /v1/auth/logout /v1/auth/logout-all /v1/auth/change-password; do
    run_st "session-${path##*/}" "$(login)" --include-path "$path"
done

kill -0 "$SERVER_PID" 2>/dev/null || { echo "contract: the server died during the run" >&2; failed=1; }
if grep -q 'panicked' "$WORK/server.log"; then
    echo "contract: the server log shows a panic:" >&2
    grep -A5 'panicked' "$WORK/server.log" >&2
    failed=1
fi

if [ "$failed" -ne 0 ]; then
    echo "contract: FAILED — the reproducing curl commands are above; JUnit reports in $REPORT_DIR" >&2
    exit 1
fi
say "ok: no server error and no response outside the committed spec"
