//! Runs, their events, questions, LLM log and command log on SQLite.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::content::counts_from_row;
use super::jobs::enqueue_in;
use super::{RowExt, SqliteStore, commit, err, ts};
use crate::common::validate_job;
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use crate::repo::{CommandLogRepo, EventRepo, LlmLogRepo, QuestionRepo, RunRepo};

macro_rules! run_columns {
    () => {
        "id, project_id, user_id, status, description, autonomy, budget, options, total_tokens,
         total_cost_micros, llm_calls, current_agent, error, created_at, updated_at, started_at,
         finished_at"
    };
}

fn run_from_row(row: &SqliteRow) -> StoreResult<Run> {
    Ok(Run {
        id: row.col("id")?,
        project_id: row.col("project_id")?,
        user_id: row.col("user_id")?,
        status: row.parsed("status")?,
        description: row.col("description")?,
        autonomy: row.col("autonomy")?,
        budget: row.json("budget")?,
        options: row.json("options")?,
        total_tokens: row.col("total_tokens")?,
        total_cost_micros: row.col("total_cost_micros")?,
        llm_calls: row.col("llm_calls")?,
        current_agent: row.col("current_agent")?,
        error: row.col("error")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        started_at: row.time_opt("started_at")?,
        finished_at: row.time_opt("finished_at")?,
    })
}

/// The row a new run gets: queued, nothing used yet.
fn queued_run(id: Uuid, run: &NewRun) -> Run {
    let at = now();
    Run {
        id,
        project_id: run.project_id,
        user_id: run.user_id,
        status: RunStatus::Queued,
        description: run.description.clone(),
        autonomy: run.autonomy.clone(),
        budget: run.budget.clone(),
        options: run.options.clone(),
        total_tokens: 0,
        total_cost_micros: 0,
        llm_calls: 0,
        current_agent: None,
        error: None,
        created_at: at,
        updated_at: at,
        started_at: None,
        finished_at: None,
    }
}

async fn insert_run<'c, E>(executor: E, run: &Run) -> StoreResult<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    sqlx::query(
        "INSERT INTO runs (id, project_id, user_id, status, description, autonomy, budget,
                           options, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(run.id)
    .bind(run.project_id)
    .bind(run.user_id)
    .bind(run.status.as_str())
    .bind(&run.description)
    .bind(&run.autonomy)
    .bind(run.budget.to_string())
    .bind(run.options.to_string())
    .bind(ts(run.created_at))
    .execute(executor)
    .await
    .map_err(err("run", "creating run"))?;
    Ok(())
}

/// Whether the project has an active run other than `except`.
async fn other_active_run(
    conn: &mut SqliteConnection,
    project_id: Uuid,
    except: Option<Uuid>,
) -> StoreResult<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM runs
                        WHERE project_id = $1 AND ($2 IS NULL OR id <> $2)
                          AND status IN ('queued', 'running', 'waiting_for_human'))",
    )
    .bind(project_id)
    .bind(except)
    .fetch_one(&mut *conn)
    .await
    .map_err(err("run", "checking for an active run"))
}

fn busy_project(project_id: Uuid) -> StoreError {
    StoreError::conflict(
        "run",
        format!("project {project_id} already has an active run"),
    )
}

#[async_trait]
impl RunRepo for SqliteStore {
    async fn create(&self, run: &NewRun) -> StoreResult<Run> {
        let created = queued_run(Uuid::now_v7(), run);
        insert_run(&self.writer, &created).await?;
        Ok(created)
    }

    async fn get(&self, id: Uuid) -> StoreResult<Run> {
        sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(err("run", "loading run"))?
        .map(|row| run_from_row(&row))
        .transpose()?
        .ok_or_else(|| StoreError::not_found("run", id))
    }

    async fn list_for_project(&self, project_id: Uuid, limit: u32) -> StoreResult<Vec<Run>> {
        let limit = validate_limit(limit)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE project_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(project_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await
        .map_err(err("run", "listing runs"))?;
        rows.iter().map(run_from_row).collect()
    }

    async fn count_active_for_user(&self, user_id: Uuid) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM runs
             WHERE user_id = $1 AND status IN ('queued', 'running', 'waiting_for_human')",
        )
        .bind(user_id)
        .fetch_one(&self.reader)
        .await
        .map_err(err("run", "counting active runs"))?;
        Ok(count.unsigned_abs())
    }

    async fn transition(
        &self,
        id: Uuid,
        from: &[RunStatus],
        to: RunStatus,
        error: Option<&str>,
    ) -> StoreResult<Run> {
        const ACTION: &str = "changing run status";
        let allowed = serde_json::to_string(&from.iter().map(|s| s.as_str()).collect::<Vec<_>>())
            .expect("a list of strings serialises");
        let at = ts(now());
        let mut tx = self.begin_write(ACTION).await?;
        let row = sqlx::query(concat!(
            "UPDATE runs SET
                status = $2,
                error = COALESCE($3, error),
                started_at = CASE WHEN $2 = 'running' THEN COALESCE(started_at, $4)
                                  ELSE started_at END,
                finished_at = CASE WHEN $5 THEN $4 ELSE finished_at END,
                updated_at = $4
             WHERE id = $1 AND status IN (SELECT value FROM json_each($6))
             RETURNING ",
            run_columns!()
        ))
        .bind(id)
        .bind(to.as_str())
        .bind(error)
        .bind(at)
        .bind(to.is_terminal())
        .bind(allowed)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err("run", ACTION))?;
        if let Some(row) = row {
            let run = run_from_row(&row)?;
            commit(tx, ACTION).await?;
            return Ok(run);
        }
        let current: Option<String> = sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err("run", ACTION))?;
        match current {
            None => Err(StoreError::not_found("run", id)),
            Some(current) => Err(StoreError::conflict(
                "run",
                format!("run {id} is {current}; cannot move it to {to}"),
            )),
        }
    }

    async fn start(&self, id: Uuid, run: &NewRun, job: &NewJob) -> StoreResult<(Run, Job)> {
        const ACTION: &str = "starting run";
        validate_job(job)?;
        let created = queued_run(id, run);
        // The write lock is held from the first statement, so the check and the inserts are
        // one step for every other writer.
        let mut tx = self.begin_write(ACTION).await?;
        if other_active_run(&mut tx, run.project_id, None).await? {
            return Err(busy_project(run.project_id));
        }
        insert_run(&mut *tx, &created).await?;
        let enqueued = enqueue_in(&mut tx, job).await?;
        if enqueued.deduplicated {
            return Err(StoreError::conflict(
                "job",
                "an unfinished job already holds the dedupe key of the new run's job",
            ));
        }
        commit(tx, ACTION).await?;
        Ok((created, enqueued.job))
    }

    async fn requeue(
        &self,
        id: Uuid,
        from: &[RunStatus],
        budget: Option<&Value>,
        job: &NewJob,
    ) -> StoreResult<(Run, Enqueued)> {
        const ACTION: &str = "queueing run again";
        validate_job(job)?;
        let allowed = serde_json::to_string(&from.iter().map(|s| s.as_str()).collect::<Vec<_>>())
            .expect("a list of strings serialises");
        let mut tx = self.begin_write(ACTION).await?;
        let row = sqlx::query(concat!(
            "UPDATE runs SET
                status = 'queued', error = NULL, current_agent = NULL, finished_at = NULL,
                budget = COALESCE($2, budget), updated_at = $3
             WHERE id = $1 AND status IN (SELECT value FROM json_each($4))
             RETURNING ",
            run_columns!()
        ))
        .bind(id)
        .bind(budget.map(Value::to_string))
        .bind(ts(now()))
        .bind(allowed)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err("run", ACTION))?;
        let Some(row) = row else {
            let current: Option<String> =
                sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err("run", ACTION))?;
            return Err(match current {
                None => StoreError::not_found("run", id),
                Some(current) => StoreError::conflict(
                    "run",
                    format!("run {id} is {current}; cannot queue it again"),
                ),
            });
        };
        let run = run_from_row(&row)?;
        if other_active_run(&mut tx, run.project_id, Some(run.id)).await? {
            return Err(busy_project(run.project_id));
        }
        let enqueued = enqueue_in(&mut tx, job).await?;
        commit(tx, ACTION).await?;
        Ok((run, enqueued))
    }

    async fn set_current_agent(&self, id: Uuid, agent: Option<&str>) -> StoreResult<()> {
        let done = sqlx::query("UPDATE runs SET current_agent = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(agent)
            .bind(ts(now()))
            .execute(&self.writer)
            .await
            .map_err(err("run", "setting current agent"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("run", id));
        }
        Ok(())
    }

    async fn add_totals(
        &self,
        id: Uuid,
        tokens: i64,
        cost_micros: i64,
        llm_calls: i64,
    ) -> StoreResult<Run> {
        if tokens < 0 || cost_micros < 0 || llm_calls < 0 {
            return Err(StoreError::invalid("run totals only grow"));
        }
        sqlx::query(concat!(
            "UPDATE runs SET total_tokens = total_tokens + $2,
                             total_cost_micros = total_cost_micros + $3,
                             llm_calls = llm_calls + $4, updated_at = $5
             WHERE id = $1 RETURNING ",
            run_columns!()
        ))
        .bind(id)
        .bind(tokens)
        .bind(cost_micros)
        .bind(llm_calls)
        .bind(ts(now()))
        .fetch_optional(&self.writer)
        .await
        .map_err(err("run", "adding run totals"))?
        .map(|row| run_from_row(&row))
        .transpose()?
        .ok_or_else(|| StoreError::not_found("run", id))
    }
}

fn event_from_row(row: &SqliteRow) -> StoreResult<RunEvent> {
    Ok(RunEvent {
        run_id: row.col("run_id")?,
        seq: row.col("seq")?,
        kind: row.col("kind")?,
        payload: row.json("payload")?,
        at: row.time("at")?,
    })
}

#[async_trait]
impl EventRepo for SqliteStore {
    async fn append(&self, run_id: Uuid, kind: &str, payload: &Value) -> StoreResult<RunEvent> {
        const ACTION: &str = "appending run event";
        validate_name("event kind", kind)?;
        let mut tx = self.begin_write(ACTION).await?;
        // The counter on the run row hands out sequence numbers: no gaps, no repeats.
        let seq: Option<i64> = sqlx::query_scalar(
            "UPDATE runs SET last_event_seq = last_event_seq + 1 WHERE id = $1
             RETURNING last_event_seq",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err("run event", ACTION))?;
        let seq = seq.ok_or_else(|| StoreError::not_found("run", run_id))?;
        let event = RunEvent {
            run_id,
            seq,
            kind: kind.to_owned(),
            payload: payload.clone(),
            at: now(),
        };
        sqlx::query(
            "INSERT INTO run_events (run_id, seq, kind, payload, at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(run_id)
        .bind(seq)
        .bind(kind)
        .bind(payload.to_string())
        .bind(ts(event.at))
        .execute(&mut *tx)
        .await
        .map_err(err("run event", ACTION))?;
        commit(tx, ACTION).await?;
        Ok(event)
    }

    async fn after(&self, run_id: Uuid, after_seq: i64, limit: u32) -> StoreResult<Vec<RunEvent>> {
        let limit = validate_limit(limit)?;
        let rows = sqlx::query(
            "SELECT run_id, seq, kind, payload, at FROM run_events
             WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(run_id)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.reader)
        .await
        .map_err(err("run event", "reading run events"))?;
        rows.iter().map(event_from_row).collect()
    }

    async fn last_seq(&self, run_id: Uuid) -> StoreResult<i64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT last_event_seq FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(err("run event", "reading last event sequence"))?;
        seq.ok_or_else(|| StoreError::not_found("run", run_id))
    }
}

macro_rules! question_columns {
    () => {
        "id, run_id, text, buttons, default_answer, asked_at, answer, answered_at"
    };
}

fn question_from_row(row: &SqliteRow) -> StoreResult<Question> {
    Ok(Question {
        id: row.col("id")?,
        run_id: row.col("run_id")?,
        text: row.col("text")?,
        buttons: row.json("buttons")?,
        default_answer: row.col("default_answer")?,
        asked_at: row.time("asked_at")?,
        answer: row.col("answer")?,
        answered_at: row.time_opt("answered_at")?,
    })
}

#[async_trait]
impl QuestionRepo for SqliteStore {
    async fn ask(&self, question: &NewQuestion) -> StoreResult<Question> {
        if question.text.trim().is_empty() {
            return Err(StoreError::invalid("question text must not be blank"));
        }
        let asked = Question {
            id: Uuid::now_v7(),
            run_id: question.run_id,
            text: question.text.clone(),
            buttons: question.buttons.clone(),
            default_answer: question.default_answer.clone(),
            asked_at: now(),
            answer: None,
            answered_at: None,
        };
        sqlx::query(
            "INSERT INTO questions (id, run_id, text, buttons, default_answer, asked_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(asked.id)
        .bind(asked.run_id)
        .bind(&asked.text)
        .bind(asked.buttons.to_string())
        .bind(&asked.default_answer)
        .bind(ts(asked.asked_at))
        .execute(&self.writer)
        .await
        .map_err(err("question", "asking question"))?;
        Ok(asked)
    }

    async fn get(&self, id: Uuid) -> StoreResult<Question> {
        sqlx::query(concat!(
            "SELECT ",
            question_columns!(),
            " FROM questions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(err("question", "loading question"))?
        .map(|row| question_from_row(&row))
        .transpose()?
        .ok_or_else(|| StoreError::not_found("question", id))
    }

    async fn answer(&self, id: Uuid, answer: &str) -> StoreResult<Question> {
        const ACTION: &str = "answering question";
        let mut tx = self.begin_write(ACTION).await?;
        let row = sqlx::query(concat!(
            "UPDATE questions SET answer = $2, answered_at = $3
             WHERE id = $1 AND answered_at IS NULL RETURNING ",
            question_columns!()
        ))
        .bind(id)
        .bind(answer)
        .bind(ts(now()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(err("question", ACTION))?;
        if let Some(row) = row {
            let question = question_from_row(&row)?;
            commit(tx, ACTION).await?;
            return Ok(question);
        }
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM questions WHERE id = $1)")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(err("question", ACTION))?;
        Err(if exists {
            StoreError::conflict("question", format!("question {id} was already answered"))
        } else {
            StoreError::not_found("question", id)
        })
    }

    async fn pending(&self, run_id: Uuid) -> StoreResult<Vec<Question>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            question_columns!(),
            " FROM questions WHERE run_id = $1 AND answered_at IS NULL ORDER BY asked_at, id"
        ))
        .bind(run_id)
        .fetch_all(&self.reader)
        .await
        .map_err(err("question", "listing pending questions"))?;
        rows.iter().map(question_from_row).collect()
    }

    async fn pending_for_user(&self, user_id: Uuid) -> StoreResult<Vec<Question>> {
        let rows = sqlx::query(
            "SELECT q.id, q.run_id, q.text, q.buttons, q.default_answer, q.asked_at, q.answer,
                    q.answered_at
             FROM questions q JOIN runs r ON r.id = q.run_id
             WHERE r.user_id = $1 AND q.answered_at IS NULL
             ORDER BY q.asked_at, q.id",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await
        .map_err(err("question", "listing pending questions"))?;
        rows.iter().map(question_from_row).collect()
    }
}

macro_rules! llm_columns {
    () => {
        "id, run_id, step_key, request_hash, provider, model, agent_role, request, response,
         prompt_tokens, completion_tokens, cached_tokens, cost_micros, latency_ms, outcome, error,
         at"
    };
}

fn llm_from_row(row: &SqliteRow) -> StoreResult<LlmRequestRecord> {
    Ok(LlmRequestRecord {
        id: row.col("id")?,
        run_id: row.col("run_id")?,
        step_key: row.col("step_key")?,
        request_hash: row.col("request_hash")?,
        provider: row.col("provider")?,
        model: row.col("model")?,
        agent_role: row.col("agent_role")?,
        request: row.json("request")?,
        response: row.json_opt("response")?,
        counts: counts_from_row(row)?,
        latency_ms: row.col("latency_ms")?,
        outcome: row.parsed("outcome")?,
        error: row.col("error")?,
        at: row.time("at")?,
    })
}

#[async_trait]
impl LlmLogRepo for SqliteStore {
    async fn record(&self, request: &NewLlmRequest) -> StoreResult<LlmRequestRecord> {
        request.counts.validate()?;
        if request.request_hash.is_empty() {
            return Err(StoreError::invalid("request hash must not be empty"));
        }
        let record = LlmRequestRecord {
            id: Uuid::now_v7(),
            run_id: request.run_id,
            step_key: request.step_key.clone(),
            request_hash: request.request_hash.clone(),
            provider: request.provider.clone(),
            model: request.model.clone(),
            agent_role: request.agent_role.clone(),
            request: request.request.clone(),
            response: request.response.clone(),
            counts: request.counts,
            latency_ms: request.latency_ms,
            outcome: request.outcome,
            error: request.error.clone(),
            at: truncate_micros(request.at),
        };
        sqlx::query(concat!(
            "INSERT INTO llm_requests (",
            llm_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        ))
        .bind(record.id)
        .bind(record.run_id)
        .bind(&record.step_key)
        .bind(&record.request_hash)
        .bind(&record.provider)
        .bind(&record.model)
        .bind(&record.agent_role)
        .bind(record.request.to_string())
        .bind(record.response.as_ref().map(Value::to_string))
        .bind(record.counts.prompt_tokens)
        .bind(record.counts.completion_tokens)
        .bind(record.counts.cached_tokens)
        .bind(record.counts.cost_micros)
        .bind(record.latency_ms)
        .bind(record.outcome.as_str())
        .bind(&record.error)
        .bind(ts(record.at))
        .execute(&self.writer)
        .await
        .map_err(err("llm request", "logging LLM request"))?;
        Ok(record)
    }

    async fn find_by_hash(&self, request_hash: &str) -> StoreResult<Option<LlmRequestRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            llm_columns!(),
            " FROM llm_requests WHERE request_hash = $1 AND outcome = 'success'
              ORDER BY at DESC, id DESC LIMIT 1"
        ))
        .bind(request_hash)
        .fetch_optional(&self.reader)
        .await
        .map_err(err("llm request", "looking up LLM request"))?
        .map(|row| llm_from_row(&row))
        .transpose()
    }

    async fn list_for_run(&self, run_id: Uuid) -> StoreResult<Vec<LlmRequestRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            llm_columns!(),
            " FROM llm_requests WHERE run_id = $1 ORDER BY at, id"
        ))
        .bind(run_id)
        .fetch_all(&self.reader)
        .await
        .map_err(err("llm request", "listing LLM requests"))?;
        rows.iter().map(llm_from_row).collect()
    }
}

fn command_from_row(row: &SqliteRow) -> StoreResult<CommandLog> {
    let argv: String = row.col("argv")?;
    Ok(CommandLog {
        id: row.col("id")?,
        run_id: row.col("run_id")?,
        argv: serde_json::from_str(&argv)
            .map_err(|_| StoreError::corrupt("command log", "argv is not a JSON string list"))?,
        exit_code: row.col("exit_code")?,
        stdout: row.col("stdout")?,
        stderr: row.col("stderr")?,
        output_truncated: row.col("output_truncated")?,
        duration_ms: row.col("duration_ms")?,
        timed_out: row.col("timed_out")?,
        at: row.time("at")?,
    })
}

#[async_trait]
impl CommandLogRepo for SqliteStore {
    async fn record(&self, command: &NewCommandLog) -> StoreResult<CommandLog> {
        if command.argv.is_empty() {
            return Err(StoreError::invalid("argv must not be empty"));
        }
        let (stdout, stdout_cut) = cap_tail(&command.stdout, MAX_COMMAND_OUTPUT_BYTES);
        let (stderr, stderr_cut) = cap_tail(&command.stderr, MAX_COMMAND_OUTPUT_BYTES);
        let log = CommandLog {
            id: Uuid::now_v7(),
            run_id: command.run_id,
            argv: command.argv.clone(),
            exit_code: command.exit_code,
            stdout: stdout.to_owned(),
            stderr: stderr.to_owned(),
            output_truncated: stdout_cut || stderr_cut,
            duration_ms: command.duration_ms,
            timed_out: command.timed_out,
            at: truncate_micros(command.at),
        };
        sqlx::query(
            "INSERT INTO command_logs (id, run_id, argv, exit_code, stdout, stderr,
                                       output_truncated, duration_ms, timed_out, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(log.id)
        .bind(log.run_id)
        .bind(serde_json::to_string(&log.argv).expect("strings serialise"))
        .bind(log.exit_code)
        .bind(&log.stdout)
        .bind(&log.stderr)
        .bind(log.output_truncated)
        .bind(log.duration_ms)
        .bind(log.timed_out)
        .bind(ts(log.at))
        .execute(&self.writer)
        .await
        .map_err(err("command log", "logging command"))?;
        Ok(log)
    }

    async fn list_for_run(&self, run_id: Uuid) -> StoreResult<Vec<CommandLog>> {
        let rows = sqlx::query(
            "SELECT id, run_id, argv, exit_code, stdout, stderr, output_truncated, duration_ms,
                    timed_out, at
             FROM command_logs WHERE run_id = $1 ORDER BY at, id",
        )
        .bind(run_id)
        .fetch_all(&self.reader)
        .await
        .map_err(err("command log", "listing commands"))?;
        rows.iter().map(command_from_row).collect()
    }
}
