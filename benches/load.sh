#!/usr/bin/env bash
# Whole-server load: the release `samokoder-server` against a minimal hyper server (the ceiling,
# examples/hello_ceiling.rs), the same requests to both, in one run, so the ratio is visible.
#
#   GET  /v1/auth/me          authentication (JWT check + revocation lookup) and one user read
#   GET  /v1/projects         the same plus one page of a user's 20 projects
#   POST /v1/auth/login       the lockout turn, an argon2id verification with the production
#                             parameters (printed), a session row: CPU-bound by design
#
# Usage: benches/load.sh            (from anywhere; builds in release first, several minutes cold)
# Knobs: LOAD_DURATION (wrk -d, default 10s), LOAD_CONNECTIONS (default 32), LOAD_THREADS
# (default 2), LOAD_LOGIN_ACCOUNTS (accounts the login load rotates over, default 4),
# LOAD_SKIP_BUILD=1 (use the binaries already in target/release), SAMOKODER_TEST_POSTGRES_URL
# (also measure on PostgreSQL, in a database created for the run and dropped after it).
#
# Everything runs on this machine's loopback: wrk, the server and the ceiling share the cores, so
# absolute figures understate a real deployment; the ceiling carries the same handicap, which is
# why the ratio is the figure to compare between runs. Each wrk run is bounded by LOAD_DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${LOAD_DURATION:-10s}
CONNECTIONS=${LOAD_CONNECTIONS:-32}
THREADS=${LOAD_THREADS:-2}
LOGIN_ACCOUNTS=${LOAD_LOGIN_ACCOUNTS:-4}
PROJECTS=20
SERVER_BIN=$ROOT/target/release/samokoder-server
HELLO_BIN=$ROOT/target/release/examples/hello_ceiling

say() { printf '\n==> load: %s\n' "$*" >&2; }
die() { printf 'load: %s\n' "$*" >&2; exit 1; }

# --- build ------------------------------------------------------------------------------------
# One cargo invocation with the workspace's one feature set (--all-features): building the
# server alone and then the example would resolve features twice (the example pulls the facade's
# dev-dependency features) and compile the workspace crates twice in release.
if [ "${LOAD_SKIP_BUILD:-0}" != 1 ]; then
    say "building samokoder-server and the hello ceiling in release (--all-features)"
    cargo build --release --all-features -p samokoder-server -p samokoder --bins --example hello_ceiling
fi
[ -x "$SERVER_BIN" ] || die "$SERVER_BIN is missing"
[ -x "$HELLO_BIN" ] || die "$HELLO_BIN is missing"

# --- the load tool ----------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
    say "installing wrk (Debian)"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get install -y --no-install-recommends wrk >/dev/null \
        || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends wrk >/dev/null; }
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/samokoder-load.XXXXXX")
PIDS=()
PG_DROP=""
cleanup() {
    status=$?
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ -n "$PG_DROP" ]; then
        psql "$PG_ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $PG_DROP WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    if [ "$status" -ne 0 ]; then
        echo "load: failed; logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_health() { # wait_health URL PID
    for _ in $(seq 300); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# One wrk script for every run: fixed method, path and headers from the environment; login bodies
# (LOAD_BODIES, one per line) rotate per request; `done` prints one machine-readable line.
cat >"$WORK/load.lua" <<'LUA'
local token = os.getenv("LOAD_TOKEN") or ""
local bodies = {}
for line in string.gmatch(os.getenv("LOAD_BODIES") or "", "[^\n]+") do
    table.insert(bodies, line)
end
wrk.method = os.getenv("LOAD_METHOD") or "GET"
if token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
end
if #bodies > 0 then
    wrk.headers["Content-Type"] = "application/json"
end
local counter = 0
request = function()
    if #bodies == 0 then
        return wrk.format()
    end
    counter = counter + 1
    return wrk.format(nil, nil, nil, bodies[(counter % #bodies) + 1])
end
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT %.1f %d %d %d %d\n",
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50), latency:percentile(99),
        e.status, e.connect + e.read + e.write + e.timeout))
end
LUA

# run_wrk BASE PATH METHOD TOKEN BODIES -> "req/s p50_us p99_us non2xx socket_errors"
run_wrk() {
    local base=$1 path=$2 method=$3 token=$4 bodies=$5
    LOAD_METHOD=$method LOAD_TOKEN=$token LOAD_BODIES=$bodies \
        wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --timeout 10s \
        -s "$WORK/load.lua" "$base$path" >"$WORK/wrk.out" 2>&1 \
        || { cat "$WORK/wrk.out" >&2; die "wrk failed against $base$path"; }
    grep '^RESULT ' "$WORK/wrk.out" | tail -n 1 | cut -d' ' -f2-
}

json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)[\"$1\"])"; }

# --- scenarios ----------------------------------------------------------------------------------
# name|method|path|which token|which bodies
SCENARIOS=(
    "GET /v1/auth/me|GET|/v1/auth/me|token|"
    "GET /v1/projects (20)|GET|/v1/projects|token|"
    "POST /v1/auth/login ($LOGIN_ACCOUNTS accounts)|POST|/v1/auth/login||many"
    "POST /v1/auth/login (1 account)|POST|/v1/auth/login||one"
)
declare -A RESULT

measure() { # measure LABEL BASE TOKEN BODIES_MANY BODIES_ONE
    local label=$1 base=$2 token=$3 many=$4 one=$5 entry name method path use_token use_bodies
    for entry in "${SCENARIOS[@]}"; do
        IFS='|' read -r name method path use_token use_bodies <<<"$entry"
        local t="" b=""
        [ "$use_token" = token ] && t=$token
        [ "$use_bodies" = many ] && b=$many
        [ "$use_bodies" = one ] && b=$one
        say "$label: $name for $DURATION ($THREADS threads, $CONNECTIONS connections)"
        RESULT["$label|$name"]=$(run_wrk "$base" "$path" "$method" "$t" "$b")
        echo "    ${RESULT["$label|$name"]}" >&2
    done
}

PASSWORD='Load-Test-Passw0rd!x'
bodies_for() { # bodies_for PREFIX COUNT -> one JSON login body per line
    local i
    for i in $(seq 1 "$2"); do
        printf '{"email":"%s-%d@example.com","password":"%s"}\n' "$1" "$i" "$PASSWORD"
    done
}

# bench_samokoder LABEL [DATABASE_URL]
bench_samokoder() {
    local label=$1 db_url=${2:-} port base data pid prefix token i
    port=$(free_port)
    base=http://127.0.0.1:$port
    data=$WORK/$label
    mkdir -p "$data"
    prefix="load-$$-$label"
    (
        # Production settings (secrets given, JSON logs at `info`, argon2 and lockout defaults),
        # except the rate limits: at their defaults (10 and 120 per minute) nearly every request
        # would be a 429 and this would measure the limiter. They stay enabled, so their cost
        # per request is in the figures.
        export SAMOKODER_ENV=production
        export SAMOKODER_LISTEN=127.0.0.1:$port
        export SAMOKODER_DATA_DIR=$data
        SAMOKODER_SECRETS__JWT_KEYS="load:$(openssl rand -hex 32)"
        SAMOKODER_SECRETS__SECRET_BOX_KEYS="load:$(openssl rand -base64 32)"
        export SAMOKODER_SECRETS__JWT_KEYS SAMOKODER_SECRETS__SECRET_BOX_KEYS
        export SAMOKODER_RATE_LIMIT__ENABLED=true
        export SAMOKODER_RATE_LIMIT__AUTH_PER_MINUTE=100000000
        export SAMOKODER_RATE_LIMIT__GENERAL_PER_MINUTE=100000000
        unset SAMOKODER_CONFIG SAMOKODER_REDIS_URL SAMOKODER_DATABASE_URL
        [ -z "$db_url" ] || export SAMOKODER_DATABASE_URL=$db_url
        "$SERVER_BIN" migrate >"$data/migrate.log" 2>&1 || { cat "$data/migrate.log" >&2; exit 1; }
        # The account whose projects are listed is on the team tier (the free tier allows 2).
        printf '%s\n' "$PASSWORD" | "$SERVER_BIN" admin create-user --email "$prefix-1@example.com" --tier team \
            >"$data/create-user.log" 2>&1 || { cat "$data/create-user.log" >&2; exit 1; }
        "$SERVER_BIN" config 2>/dev/null | sed -n '/^\[auth.password_hash\]/,/^$/p' |
            awk -F' = ' '/=/ { printf "%s%s=%s", sep, $1, $2; sep = ", " }' >"$data/argon2.txt"
        exec "$SERVER_BIN" serve >"$data/server.log" 2>&1
    ) &
    pid=$!
    PIDS+=("$pid")
    wait_health "$base/health" "$pid" || { tail -n 30 "$data/server.log" >&2 || true; die "$label: the server did not start"; }
    say "$label: samokoder-server on $base; argon2id: $(cat "$data/argon2.txt")"

    for i in $(seq 2 "$LOGIN_ACCOUNTS"); do
        curl -fsS -o /dev/null -X POST "$base/v1/auth/register" -H 'Content-Type: application/json' \
            --data "{\"email\":\"$prefix-$i@example.com\",\"password\":\"$PASSWORD\"}" \
            || die "$label: cannot register account $i"
    done
    token=$(curl -fsS -X POST "$base/v1/auth/login" -H 'Content-Type: application/json' \
        --data "{\"email\":\"$prefix-1@example.com\",\"password\":\"$PASSWORD\"}" | json_field access_token)
    for i in $(seq 1 "$PROJECTS"); do
        curl -fsS -o /dev/null -X POST "$base/v1/projects" -H "Authorization: Bearer $token" \
            -H 'Content-Type: application/json' \
            --data "{\"name\":\"Load project $i\",\"description\":\"One of the $PROJECTS projects the list pages over\"}" \
            || die "$label: cannot create project $i"
    done
    local listed
    listed=$(curl -fsS "$base/v1/projects?limit=$PROJECTS" -H "Authorization: Bearer $token" |
        python3 -c 'import json, sys; print(len(json.load(sys.stdin)["projects"]))')
    [ "$listed" = "$PROJECTS" ] || die "$label: GET /v1/projects?limit=$PROJECTS lists $listed projects, expected $PROJECTS"

    # GET /v1/projects without a limit returns the default page (20), i.e. all 20 projects.
    measure "$label" "$base" "$token" "$(bodies_for "$prefix" "$LOGIN_ACCOUNTS")" "$(bodies_for "$prefix" 1)"

    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# --- the ceiling --------------------------------------------------------------------------------
bench_hello() {
    local pid base
    "$HELLO_BIN" 127.0.0.1:0 >"$WORK/hello.out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do
        grep -q '^listening on ' "$WORK/hello.out" 2>/dev/null && break
        sleep 0.1
    done
    base=$(sed -n 's/^listening on //p' "$WORK/hello.out")
    [ -n "$base" ] || die "the hello ceiling did not start"
    say "hello ceiling on $base"
    measure hello "$base" "not-a-real-token-but-the-same-header-$(openssl rand -hex 64)" \
        "$(bodies_for hello "$LOGIN_ACCOUNTS")" "$(bodies_for hello 1)"
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Anything else running on the machine (a build) shows in these and skews every row.
LOADAVG_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
LABELS=(sqlite)
bench_samokoder sqlite
if [ -n "${SAMOKODER_TEST_POSTGRES_URL:-}" ]; then
    PG_ADMIN_URL=$SAMOKODER_TEST_POSTGRES_URL
    if command -v psql >/dev/null 2>&1; then
        PG_DROP="samokoder_load_$$"
        psql "$PG_ADMIN_URL" -q -c "CREATE DATABASE $PG_DROP" >/dev/null
        PG_URL="${PG_ADMIN_URL%/*}/$PG_DROP"
        LABELS+=(postgres)
        bench_samokoder postgres "$PG_URL"
    else
        say "psql not found: skipping PostgreSQL (the run needs a database of its own)"
    fi
fi
bench_hello

# --- report -------------------------------------------------------------------------------------
us_to_ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
printf '\nwrk: %s threads, %s connections, %s per row, loopback; argon2id: %s\n' \
    "$THREADS" "$CONNECTIONS" "$DURATION" "$(cat "$WORK/sqlite/argon2.txt")"
printf 'load average before: %s, after: %s (%s cores; wrk and the server share them)\n' \
    "$LOADAVG_BEFORE" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)"
printf '%-36s %-9s %10s %9s %9s %8s %s\n' request target 'req/s' 'p50 ms' 'p99 ms' 'ceiling' 'errors'
for entry in "${SCENARIOS[@]}"; do
    name=${entry%%|*}
    read -r h_rps _ <<<"${RESULT["hello|$name"]}"
    for label in "${LABELS[@]}" hello; do
        read -r rps p50 p99 non2xx sock <<<"${RESULT["$label|$name"]}"
        ratio=$(awk -v a="$rps" -v b="$h_rps" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }')
        errors=""
        [ "$non2xx" = 0 ] || errors="$non2xx non-2xx"
        [ "$sock" = 0 ] || errors="$errors $sock socket errors"
        printf '%-36s %-9s %10s %9s %9s %8s %s\n' "$name" "$label" "$rps" \
            "$(us_to_ms "$p50")" "$(us_to_ms "$p99")" "$ratio" "$errors"
    done
done
