-- Samokoder store, PostgreSQL schema v1. Shared by the sqlx-postgres and diesel-postgres
-- backends: plain SQL, no extensions, no schema-qualified names (the schema comes from the
-- connection's search_path, which is how tests isolate themselves).
--
-- Instants are TIMESTAMPTZ (microseconds, UTC), ids UUID v7, JSON is JSONB.

CREATE TABLE users (
    id                    UUID        NOT NULL PRIMARY KEY,
    email                 TEXT        NOT NULL,
    -- trimmed, Unicode-lower-cased e-mail, computed in Rust so every backend agrees
    email_key             TEXT        NOT NULL CONSTRAINT users_email_key_unique UNIQUE,
    password_hash         TEXT        NOT NULL,
    tier                  TEXT        NOT NULL DEFAULT 'free'
                                      CHECK (tier IN ('free', 'starter', 'pro', 'team')),
    is_admin              BOOLEAN     NOT NULL DEFAULT FALSE,
    tokens_revoked_before TIMESTAMPTZ,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL
);

CREATE TABLE refresh_families (
    family_id   UUID        NOT NULL PRIMARY KEY,
    user_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    current_jti UUID        NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);
CREATE INDEX refresh_families_expires ON refresh_families (expires_at);

CREATE TABLE revoked_tokens (
    jti        UUID        NOT NULL PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires_at);

-- No foreign key: attempts are recorded for unknown e-mails too.
CREATE TABLE login_attempts (
    id        BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account   TEXT        NOT NULL,
    client    TEXT        NOT NULL,
    succeeded BOOLEAN     NOT NULL,
    at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX login_attempts_account ON login_attempts (account, at);
CREATE INDEX login_attempts_at ON login_attempts (at);

CREATE TABLE projects (
    id          UUID        NOT NULL PRIMARY KEY,
    owner_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT        NOT NULL,
    -- lower-cased name for case-insensitive substring search, folded in Rust like SQLite's
    name_key    TEXT        NOT NULL,
    description TEXT,
    archived    BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX projects_owner_created ON projects (owner_id, created_at DESC, id DESC);

CREATE TABLE provider_keys (
    id              UUID        NOT NULL PRIMARY KEY,
    user_id         UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider        TEXT        NOT NULL,
    label           TEXT,
    last_four       TEXT        NOT NULL,
    preferred_model TEXT,
    settings        JSONB       NOT NULL DEFAULT '{}',
    ciphertext      BYTEA       NOT NULL,
    key_id          TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    CONSTRAINT provider_keys_user_provider_unique UNIQUE (user_id, provider)
);
CREATE INDEX provider_keys_key_id ON provider_keys (key_id);

CREATE TABLE vcs_tokens (
    id         UUID        NOT NULL PRIMARY KEY,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    host       TEXT        NOT NULL,
    label      TEXT,
    last_four  TEXT        NOT NULL,
    ciphertext BYTEA       NOT NULL,
    key_id     TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT vcs_tokens_user_host_unique UNIQUE (user_id, host)
);
CREATE INDEX vcs_tokens_key_id ON vcs_tokens (key_id);

CREATE TABLE runs (
    id                UUID        NOT NULL PRIMARY KEY,
    project_id        UUID        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id           UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status            TEXT        NOT NULL CHECK (status IN ('queued', 'running', 'waiting_for_human',
                                       'completed', 'failed', 'cancelled', 'budget_exhausted')),
    description       TEXT        NOT NULL,
    autonomy          TEXT        NOT NULL,
    budget            JSONB       NOT NULL,
    total_tokens      BIGINT      NOT NULL DEFAULT 0,
    total_cost_micros BIGINT      NOT NULL DEFAULT 0,
    llm_calls         BIGINT      NOT NULL DEFAULT 0,
    current_agent     TEXT,
    error             TEXT,
    -- the last event sequence number handed out; bumping it serialises concurrent appends
    last_event_seq    BIGINT      NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ
);
CREATE INDEX runs_project ON runs (project_id, created_at DESC);
CREATE INDEX runs_user_status ON runs (user_id, status);

-- Usage outlives projects and runs (it is billing history): their ids are nulled on delete.
CREATE TABLE usage_records (
    id                UUID        NOT NULL PRIMARY KEY,
    user_id           UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id        UUID        REFERENCES projects (id) ON DELETE SET NULL,
    run_id            UUID        REFERENCES runs (id) ON DELETE SET NULL,
    provider          TEXT        NOT NULL,
    model             TEXT        NOT NULL,
    agent_role        TEXT,
    prompt_tokens     BIGINT      NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens BIGINT      NOT NULL CHECK (completion_tokens >= 0),
    cached_tokens     BIGINT      NOT NULL CHECK (cached_tokens >= 0),
    cost_micros       BIGINT      NOT NULL CHECK (cost_micros >= 0),
    latency_ms        BIGINT      NOT NULL,
    outcome           TEXT        NOT NULL,
    at                TIMESTAMPTZ NOT NULL
);
CREATE INDEX usage_records_user_at ON usage_records (user_id, at);
CREATE INDEX usage_records_project ON usage_records (project_id);
CREATE INDEX usage_records_run ON usage_records (run_id);

CREATE TABLE notifications (
    id         UUID        NOT NULL PRIMARY KEY,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT        NOT NULL,
    title      TEXT        NOT NULL,
    body       TEXT        NOT NULL,
    data       JSONB       NOT NULL,
    read_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX notifications_user ON notifications (user_id, id DESC);

-- No foreign keys: analytics and audit outlive the accounts they mention.
CREATE TABLE analytics_events (
    id         UUID        NOT NULL PRIMARY KEY,
    user_id    UUID,
    name       TEXT        NOT NULL,
    properties JSONB       NOT NULL,
    at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX analytics_events_user_at ON analytics_events (user_id, at);
CREATE INDEX analytics_events_at ON analytics_events (at);

CREATE TABLE audit_log (
    id         UUID        NOT NULL PRIMARY KEY,
    actor_id   UUID,
    subject_id UUID,
    action     TEXT        NOT NULL,
    client     TEXT,
    detail     JSONB       NOT NULL,
    at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log (actor_id, id);
CREATE INDEX audit_log_subject ON audit_log (subject_id, id);

CREATE TABLE quota_counters (
    user_id      UUID   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT   NOT NULL,
    period_start DATE   NOT NULL,
    used         BIGINT NOT NULL CHECK (used >= 0),
    PRIMARY KEY (user_id, kind, period_start)
);

-- head_state_id has no foreign key: only `append` moves it, in the transaction that inserts the
-- state, and a cycle of cascading keys between branches and states would make project deletion
-- order-dependent.
CREATE TABLE branches (
    project_id    UUID        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name          TEXT        NOT NULL,
    head_state_id UUID,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, name)
);

CREATE TABLE states (
    id         UUID        NOT NULL PRIMARY KEY,
    project_id UUID        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    branch     TEXT        NOT NULL,
    parent_id  UUID        REFERENCES states (id) ON DELETE CASCADE,
    run_id     UUID        REFERENCES runs (id) ON DELETE SET NULL,
    sequence   BIGINT      NOT NULL CHECK (sequence >= 1),
    step_label TEXT        NOT NULL,
    state      JSONB       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    -- a linear chain per branch: one state per position
    CONSTRAINT states_branch_sequence_unique UNIQUE (project_id, branch, sequence),
    FOREIGN KEY (project_id, branch) REFERENCES branches (project_id, name) ON DELETE CASCADE
);
CREATE INDEX states_parent ON states (parent_id);
CREATE INDEX states_run ON states (run_id);

CREATE TABLE blobs (
    hash       TEXT        NOT NULL PRIMARY KEY,
    size       BIGINT      NOT NULL,
    content    BYTEA       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- Each state stores only the paths it changed; a NULL blob marks a deletion.
CREATE TABLE state_files (
    state_id  UUID NOT NULL REFERENCES states (id) ON DELETE CASCADE,
    path      TEXT NOT NULL,
    blob_hash TEXT REFERENCES blobs (hash),
    PRIMARY KEY (state_id, path)
);
CREATE INDEX state_files_blob ON state_files (blob_hash);

CREATE TABLE run_events (
    run_id  UUID        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq     BIGINT      NOT NULL,
    kind    TEXT        NOT NULL,
    payload JSONB       NOT NULL,
    at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE questions (
    id             UUID        NOT NULL PRIMARY KEY,
    run_id         UUID        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    text           TEXT        NOT NULL,
    buttons        JSONB       NOT NULL,
    default_answer TEXT,
    asked_at       TIMESTAMPTZ NOT NULL,
    answer         TEXT,
    answered_at    TIMESTAMPTZ
);
CREATE INDEX questions_run ON questions (run_id, asked_at);

CREATE TABLE llm_requests (
    id                UUID        NOT NULL PRIMARY KEY,
    run_id            UUID        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_key          TEXT        NOT NULL,
    request_hash      TEXT        NOT NULL,
    provider          TEXT        NOT NULL,
    model             TEXT        NOT NULL,
    agent_role        TEXT,
    request           JSONB       NOT NULL,
    response          JSONB,
    prompt_tokens     BIGINT      NOT NULL,
    completion_tokens BIGINT      NOT NULL,
    cached_tokens     BIGINT      NOT NULL,
    cost_micros       BIGINT      NOT NULL,
    latency_ms        BIGINT      NOT NULL,
    outcome           TEXT        NOT NULL,
    error             TEXT,
    at                TIMESTAMPTZ NOT NULL
);
CREATE INDEX llm_requests_hash ON llm_requests (request_hash, at);
CREATE INDEX llm_requests_run ON llm_requests (run_id, at);

CREATE TABLE command_logs (
    id               UUID        NOT NULL PRIMARY KEY,
    run_id           UUID        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    argv             TEXT[]      NOT NULL,
    exit_code        INTEGER,
    stdout           TEXT        NOT NULL,
    stderr           TEXT        NOT NULL,
    output_truncated BOOLEAN     NOT NULL,
    duration_ms      BIGINT      NOT NULL,
    timed_out        BOOLEAN     NOT NULL,
    at               TIMESTAMPTZ NOT NULL
);
CREATE INDEX command_logs_run ON command_logs (run_id, at);

CREATE TABLE jobs (
    id               UUID        NOT NULL PRIMARY KEY,
    kind             TEXT        NOT NULL,
    payload          JSONB       NOT NULL,
    status           TEXT        NOT NULL
                                 CHECK (status IN ('queued', 'running', 'completed', 'dead', 'cancelled')),
    attempts         INTEGER     NOT NULL DEFAULT 0,
    max_attempts     INTEGER     NOT NULL CHECK (max_attempts >= 1),
    run_at           TIMESTAMPTZ NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    last_error       TEXT,
    dedupe_key       TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ
);
CREATE INDEX jobs_ready ON jobs (status, run_at);
CREATE INDEX jobs_lease ON jobs (status, lease_expires_at);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
-- at most one unfinished job per dedupe key
CREATE UNIQUE INDEX jobs_dedupe ON jobs (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running');
