//! The store conformance suite: every case runs against every backend.
//!
//! One test binary for the crate (faster to link than one per file). Each case is an
//! `async fn(Ctx)` in a module below; [`for_each_case!`] lists them once, and
//! [`backend_suite!`] turns the list into `#[tokio::test]`s for one backend, each on a fresh
//! database. Adding a backend is a [`harness::TestBackend`] implementation and one line at the
//! bottom of this file.
//!
//! SQLite always runs. PostgreSQL runs when `SAMOKODER_TEST_POSTGRES_URL` is set (each test in
//! its own schema) and prints a SKIPPED line otherwise.

mod fixtures;
mod harness;

mod content;
mod engine;
mod jobs;
mod migrations;
mod projects;
mod runs;
mod states;
mod users;

/// Calls `$callback!($args; <every case, grouped by module>)`.
macro_rules! for_each_case {
    ($callback:ident ! ( $($args:tt)* )) => {
        $callback!($($args)*;
            users {
                create_get_find,
                email_unique_ignoring_case,
                rejects_invalid_users,
                updates_and_not_found,
                list_count_and_delete_cascades,
                refresh_family_rotation,
                concurrent_rotate_has_one_winner,
                token_revocation,
                login_failures_forgiven_after_success,
                session_purges,
                concurrent_same_email_has_one_winner,
            },
            projects {
                create_get_and_ownership,
                list_pages_newest_first,
                list_filters_by_name_ignoring_case,
                update_archive_delete,
                counts_for_quotas,
                provider_keys,
                vcs_tokens,
                reseal_is_compare_and_swap,
                quota_consume_until_limit,
                concurrent_quota_never_overshoots,
            },
            content {
                usage_records_and_aggregates,
                usage_rejects_bad_input,
                notifications_lifecycle,
                analytics_record_aggregate_export_purge,
                audit_append_and_list,
            },
            runs {
                run_lifecycle,
                run_not_found_and_fk,
                events_sequence_and_replay,
                concurrent_events_have_no_gaps,
                questions_answer_once,
                concurrent_answers_have_one_winner,
                llm_log_replay_lookup,
                command_log_caps_output,
                start_writes_run_and_job_one_active_per_project,
                concurrent_starts_have_one_winner,
                requeue_moves_status_budget_and_job,
            },
            states {
                append_chain_and_materialise,
                blobs_stored_once_and_collected,
                append_conflicts_and_errors,
                branches_fork,
                concurrent_appends_one_winner_per_parent,
                project_delete_cascades_states,
            },
            jobs {
                enqueue_claim_complete,
                claim_respects_kinds_and_schedule,
                dedupe_key,
                fail_retries_with_backoff_then_dies,
                expired_lease_is_reclaimed,
                release_returns_the_job_without_spending_an_attempt,
                last_attempt_expiry_is_dead,
                cancel_get_purge,
                eight_workers_one_dies_no_job_lost,
            },
            migrations {
                migrate_from_empty_twice,
                concurrent_migrations,
                health_and_pool_stats,
            },
        );
    };
}

/// Declares `mod $backend` with one test per case, each run on a fresh `$factory` database.
macro_rules! backend_suite {
    ($backend:ident, $factory:expr; $( $module:ident { $($case:ident),* $(,)? } ),* $(,)?) => {
        mod $backend {
            $(
                mod $module {
                    $(
                        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                        async fn $case() {
                            crate::harness::run($factory, crate::$module::$case).await;
                        }
                    )*
                }
            )*
        }
    };
}

for_each_case!(backend_suite!(sqlite, crate::harness::Sqlite));
for_each_case!(backend_suite!(postgres, crate::harness::Postgres));
for_each_case!(backend_suite!(
    diesel_postgres,
    crate::harness::DieselPostgres
));
