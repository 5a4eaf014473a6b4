-- Samokoder store, SQLite schema v1.
--
-- Conventions (the Rust side maps them): ids are UUID v7 as 16-byte BLOBs (byte order is time
-- order); instants are INTEGER microseconds since the Unix epoch, UTC (compact, and compare
-- correctly as numbers); JSON is TEXT; booleans are 0/1. Tables are STRICT so a type slip in the
-- mapping code fails loudly instead of storing the wrong affinity.

CREATE TABLE users (
    id                    BLOB    NOT NULL PRIMARY KEY,
    email                 TEXT    NOT NULL,
    -- trimmed, Unicode-lower-cased e-mail, computed in Rust so every backend agrees
    email_key             TEXT    NOT NULL UNIQUE,
    password_hash         TEXT    NOT NULL,
    tier                  TEXT    NOT NULL DEFAULT 'free'
                                  CHECK (tier IN ('free', 'starter', 'pro', 'team')),
    is_admin              INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    tokens_revoked_before INTEGER,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
) STRICT;

CREATE TABLE refresh_families (
    family_id   BLOB    NOT NULL PRIMARY KEY,
    user_id     BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    current_jti BLOB    NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX refresh_families_user ON refresh_families (user_id);
CREATE INDEX refresh_families_expires ON refresh_families (expires_at);

CREATE TABLE revoked_tokens (
    jti        BLOB    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL
) STRICT;
CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires_at);

-- No foreign key: attempts are recorded for unknown e-mails too.
CREATE TABLE login_attempts (
    id        INTEGER NOT NULL PRIMARY KEY,
    account   TEXT    NOT NULL,
    client    TEXT    NOT NULL,
    succeeded INTEGER NOT NULL CHECK (succeeded IN (0, 1)),
    at        INTEGER NOT NULL
) STRICT;
CREATE INDEX login_attempts_account ON login_attempts (account, at);
CREATE INDEX login_attempts_at ON login_attempts (at);

CREATE TABLE projects (
    id          BLOB    NOT NULL PRIMARY KEY,
    owner_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    -- lower-cased name for case-insensitive substring search (SQLite's LIKE folds ASCII only)
    name_key    TEXT    NOT NULL,
    description TEXT,
    archived    INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX projects_owner_created ON projects (owner_id, created_at DESC, id DESC);

CREATE TABLE provider_keys (
    id              BLOB    NOT NULL PRIMARY KEY,
    user_id         BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider        TEXT    NOT NULL,
    label           TEXT,
    last_four       TEXT    NOT NULL,
    preferred_model TEXT,
    settings        TEXT    NOT NULL DEFAULT '{}',
    ciphertext      BLOB    NOT NULL,
    key_id          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (user_id, provider)
) STRICT;
CREATE INDEX provider_keys_key_id ON provider_keys (key_id);

CREATE TABLE vcs_tokens (
    id         BLOB    NOT NULL PRIMARY KEY,
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    host       TEXT    NOT NULL,
    label      TEXT,
    last_four  TEXT    NOT NULL,
    ciphertext BLOB    NOT NULL,
    key_id     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (user_id, host)
) STRICT;
CREATE INDEX vcs_tokens_key_id ON vcs_tokens (key_id);

CREATE TABLE runs (
    id                BLOB    NOT NULL PRIMARY KEY,
    project_id        BLOB    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id           BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status            TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'waiting_for_human',
                                   'completed', 'failed', 'cancelled', 'budget_exhausted')),
    description       TEXT    NOT NULL,
    autonomy          TEXT    NOT NULL,
    budget            TEXT    NOT NULL,
    total_tokens      INTEGER NOT NULL DEFAULT 0,
    total_cost_micros INTEGER NOT NULL DEFAULT 0,
    llm_calls         INTEGER NOT NULL DEFAULT 0,
    current_agent     TEXT,
    error             TEXT,
    -- the last event sequence number handed out; bumping it serialises concurrent appends
    last_event_seq    INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER
) STRICT;
CREATE INDEX runs_project ON runs (project_id, created_at DESC);
CREATE INDEX runs_user_status ON runs (user_id, status);

-- Usage outlives projects and runs (it is billing history): their ids are nulled on delete.
CREATE TABLE usage_records (
    id                BLOB    NOT NULL PRIMARY KEY,
    user_id           BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id        BLOB    REFERENCES projects (id) ON DELETE SET NULL,
    run_id            BLOB    REFERENCES runs (id) ON DELETE SET NULL,
    provider          TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    agent_role        TEXT,
    prompt_tokens     INTEGER NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens INTEGER NOT NULL CHECK (completion_tokens >= 0),
    cached_tokens     INTEGER NOT NULL CHECK (cached_tokens >= 0),
    cost_micros       INTEGER NOT NULL CHECK (cost_micros >= 0),
    latency_ms        INTEGER NOT NULL,
    outcome           TEXT    NOT NULL,
    at                INTEGER NOT NULL
) STRICT;
CREATE INDEX usage_records_user_at ON usage_records (user_id, at);
CREATE INDEX usage_records_project ON usage_records (project_id);
CREATE INDEX usage_records_run ON usage_records (run_id);

CREATE TABLE notifications (
    id         BLOB    NOT NULL PRIMARY KEY,
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL,
    title      TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    read_at    INTEGER,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX notifications_user ON notifications (user_id, id DESC);

-- No foreign keys: analytics and audit outlive the accounts they mention.
CREATE TABLE analytics_events (
    id         BLOB    NOT NULL PRIMARY KEY,
    user_id    BLOB,
    name       TEXT    NOT NULL,
    properties TEXT    NOT NULL,
    at         INTEGER NOT NULL
) STRICT;
CREATE INDEX analytics_events_user_at ON analytics_events (user_id, at);
CREATE INDEX analytics_events_at ON analytics_events (at);

CREATE TABLE audit_log (
    id         BLOB    NOT NULL PRIMARY KEY,
    actor_id   BLOB,
    subject_id BLOB,
    action     TEXT    NOT NULL,
    client     TEXT,
    detail     TEXT    NOT NULL,
    at         INTEGER NOT NULL
) STRICT;
CREATE INDEX audit_log_actor ON audit_log (actor_id, id);
CREATE INDEX audit_log_subject ON audit_log (subject_id, id);

CREATE TABLE quota_counters (
    user_id      BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT    NOT NULL,
    period_start TEXT    NOT NULL,
    used         INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (user_id, kind, period_start)
) STRICT;

-- head_state_id has no foreign key: only `append` moves it, in the transaction that inserts the
-- state, and a cycle of cascading keys between branches and states would make project deletion
-- order-dependent.
CREATE TABLE branches (
    project_id    BLOB    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    head_state_id BLOB,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (project_id, name)
) STRICT;

CREATE TABLE states (
    id         BLOB    NOT NULL PRIMARY KEY,
    project_id BLOB    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    branch     TEXT    NOT NULL,
    parent_id  BLOB    REFERENCES states (id) ON DELETE CASCADE,
    run_id     BLOB    REFERENCES runs (id) ON DELETE SET NULL,
    sequence   INTEGER NOT NULL CHECK (sequence >= 1),
    step_label TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    -- a linear chain per branch: one state per position
    UNIQUE (project_id, branch, sequence),
    FOREIGN KEY (project_id, branch) REFERENCES branches (project_id, name) ON DELETE CASCADE
) STRICT;
CREATE INDEX states_parent ON states (parent_id);
CREATE INDEX states_run ON states (run_id);

CREATE TABLE blobs (
    hash       TEXT    NOT NULL PRIMARY KEY,
    size       INTEGER NOT NULL,
    content    BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- Each state stores only the paths it changed; a NULL blob marks a deletion.
CREATE TABLE state_files (
    state_id  BLOB NOT NULL REFERENCES states (id) ON DELETE CASCADE,
    path      TEXT NOT NULL,
    blob_hash TEXT REFERENCES blobs (hash),
    PRIMARY KEY (state_id, path)
) STRICT;
CREATE INDEX state_files_blob ON state_files (blob_hash);

CREATE TABLE run_events (
    run_id  BLOB    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    payload TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
) STRICT;

CREATE TABLE questions (
    id             BLOB    NOT NULL PRIMARY KEY,
    run_id         BLOB    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    text           TEXT    NOT NULL,
    buttons        TEXT    NOT NULL,
    default_answer TEXT,
    asked_at       INTEGER NOT NULL,
    answer         TEXT,
    answered_at    INTEGER
) STRICT;
CREATE INDEX questions_run ON questions (run_id, asked_at);

CREATE TABLE llm_requests (
    id                BLOB    NOT NULL PRIMARY KEY,
    run_id            BLOB    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_key          TEXT    NOT NULL,
    request_hash      TEXT    NOT NULL,
    provider          TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    agent_role        TEXT,
    request           TEXT    NOT NULL,
    response          TEXT,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    cost_micros       INTEGER NOT NULL,
    latency_ms        INTEGER NOT NULL,
    outcome           TEXT    NOT NULL,
    error             TEXT,
    at                INTEGER NOT NULL
) STRICT;
CREATE INDEX llm_requests_hash ON llm_requests (request_hash, at);
CREATE INDEX llm_requests_run ON llm_requests (run_id, at);

CREATE TABLE command_logs (
    id               BLOB    NOT NULL PRIMARY KEY,
    run_id           BLOB    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    argv             TEXT    NOT NULL,
    exit_code        INTEGER,
    stdout           TEXT    NOT NULL,
    stderr           TEXT    NOT NULL,
    output_truncated INTEGER NOT NULL CHECK (output_truncated IN (0, 1)),
    duration_ms      INTEGER NOT NULL,
    timed_out        INTEGER NOT NULL CHECK (timed_out IN (0, 1)),
    at               INTEGER NOT NULL
) STRICT;
CREATE INDEX command_logs_run ON command_logs (run_id, at);

CREATE TABLE jobs (
    id               BLOB    NOT NULL PRIMARY KEY,
    kind             TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL
                             CHECK (status IN ('queued', 'running', 'completed', 'dead', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at           INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    dedupe_key       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER
) STRICT;
CREATE INDEX jobs_ready ON jobs (status, run_at);
CREATE INDEX jobs_lease ON jobs (status, lease_expires_at);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
-- at most one unfinished job per dedupe key
CREATE UNIQUE INDEX jobs_dedupe ON jobs (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running');
