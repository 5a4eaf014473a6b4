//! The diesel view of `migrations/postgres/*.sql`, written by hand.
//!
//! There is no `diesel print-schema` step (it needs libpq and a live database at build time), so
//! this file is kept in step with the SQL by a test instead: `schema_matches_the_migrations` in
//! `tests.rs` parses the `table!` blocks below and compares every table, column, type and
//! nullability with what the migrated database reports in `information_schema`, both ways. Keep
//! one `column -> Type,` per line so that test can read it.

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        email_key -> Text,
        password_hash -> Text,
        tier -> Text,
        is_admin -> Bool,
        tokens_revoked_before -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    refresh_families (family_id) {
        family_id -> Uuid,
        user_id -> Uuid,
        current_jti -> Uuid,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Uuid,
        expires_at -> Timestamptz,
        revoked_at -> Timestamptz,
    }
}

diesel::table! {
    login_attempts (id) {
        id -> Int8,
        account -> Text,
        client -> Text,
        succeeded -> Bool,
        at -> Timestamptz,
    }
}

diesel::table! {
    projects (id) {
        id -> Uuid,
        owner_id -> Uuid,
        name -> Text,
        name_key -> Text,
        description -> Nullable<Text>,
        archived -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    provider_keys (id) {
        id -> Uuid,
        user_id -> Uuid,
        provider -> Text,
        label -> Nullable<Text>,
        last_four -> Text,
        preferred_model -> Nullable<Text>,
        settings -> Jsonb,
        ciphertext -> Bytea,
        key_id -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    vcs_tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        host -> Text,
        label -> Nullable<Text>,
        last_four -> Text,
        ciphertext -> Bytea,
        key_id -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    runs (id) {
        id -> Uuid,
        project_id -> Uuid,
        user_id -> Uuid,
        status -> Text,
        description -> Text,
        autonomy -> Text,
        budget -> Jsonb,
        total_tokens -> Int8,
        total_cost_micros -> Int8,
        llm_calls -> Int8,
        current_agent -> Nullable<Text>,
        error -> Nullable<Text>,
        last_event_seq -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        options -> Jsonb,
    }
}

diesel::table! {
    usage_records (id) {
        id -> Uuid,
        user_id -> Uuid,
        project_id -> Nullable<Uuid>,
        run_id -> Nullable<Uuid>,
        provider -> Text,
        model -> Text,
        agent_role -> Nullable<Text>,
        prompt_tokens -> Int8,
        completion_tokens -> Int8,
        cached_tokens -> Int8,
        cost_micros -> Int8,
        latency_ms -> Int8,
        outcome -> Text,
        at -> Timestamptz,
    }
}

diesel::table! {
    notifications (id) {
        id -> Uuid,
        user_id -> Uuid,
        kind -> Text,
        title -> Text,
        body -> Text,
        data -> Jsonb,
        read_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    analytics_events (id) {
        id -> Uuid,
        user_id -> Nullable<Uuid>,
        name -> Text,
        properties -> Jsonb,
        at -> Timestamptz,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Uuid,
        actor_id -> Nullable<Uuid>,
        subject_id -> Nullable<Uuid>,
        action -> Text,
        client -> Nullable<Text>,
        detail -> Jsonb,
        at -> Timestamptz,
    }
}

diesel::table! {
    quota_counters (user_id, kind, period_start) {
        user_id -> Uuid,
        kind -> Text,
        period_start -> Date,
        used -> Int8,
    }
}

diesel::table! {
    branches (project_id, name) {
        project_id -> Uuid,
        name -> Text,
        head_state_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    states (id) {
        id -> Uuid,
        project_id -> Uuid,
        branch -> Text,
        parent_id -> Nullable<Uuid>,
        run_id -> Nullable<Uuid>,
        sequence -> Int8,
        step_label -> Text,
        state -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    blobs (hash) {
        hash -> Text,
        size -> Int8,
        content -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    state_files (state_id, path) {
        state_id -> Uuid,
        path -> Text,
        blob_hash -> Nullable<Text>,
    }
}

diesel::table! {
    run_events (run_id, seq) {
        run_id -> Uuid,
        seq -> Int8,
        kind -> Text,
        payload -> Jsonb,
        at -> Timestamptz,
    }
}

diesel::table! {
    questions (id) {
        id -> Uuid,
        run_id -> Uuid,
        text -> Text,
        buttons -> Jsonb,
        default_answer -> Nullable<Text>,
        asked_at -> Timestamptz,
        answer -> Nullable<Text>,
        answered_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    llm_requests (id) {
        id -> Uuid,
        run_id -> Uuid,
        step_key -> Text,
        request_hash -> Text,
        provider -> Text,
        model -> Text,
        agent_role -> Nullable<Text>,
        request -> Jsonb,
        response -> Nullable<Jsonb>,
        prompt_tokens -> Int8,
        completion_tokens -> Int8,
        cached_tokens -> Int8,
        cost_micros -> Int8,
        latency_ms -> Int8,
        outcome -> Text,
        error -> Nullable<Text>,
        at -> Timestamptz,
    }
}

diesel::table! {
    command_logs (id) {
        id -> Uuid,
        run_id -> Uuid,
        argv -> Array<Text>,
        exit_code -> Nullable<Int4>,
        stdout -> Text,
        stderr -> Text,
        output_truncated -> Bool,
        duration_ms -> Int8,
        timed_out -> Bool,
        at -> Timestamptz,
    }
}

diesel::table! {
    jobs (id) {
        id -> Uuid,
        kind -> Text,
        payload -> Jsonb,
        status -> Text,
        attempts -> Int4,
        max_attempts -> Int4,
        run_at -> Timestamptz,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        dedupe_key -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    samokoder_schema_migrations (version) {
        version -> Int8,
        name -> Text,
        checksum -> Text,
        applied_at -> Timestamptz,
    }
}

diesel::joinable!(questions -> runs (run_id));

diesel::allow_tables_to_appear_in_same_query!(questions, runs, branches, states);
