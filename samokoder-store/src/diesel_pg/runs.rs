//! Runs, their events, questions, the LLM log and the command log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::exists;
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::errors::{TxError, db};
use super::jobs::enqueue_in;
use super::schema::{command_logs, llm_requests, projects, questions, run_events, runs};
use super::{DieselPgStore, touched};
use crate::common::validate_job;
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use crate::repo::{CommandLogRepo, EventRepo, LlmLogRepo, QuestionRepo, RunRepo};

#[derive(Queryable, Selectable, QueryableByName)]
#[diesel(table_name = runs, check_for_backend(diesel::pg::Pg))]
struct RunRow {
    id: Uuid,
    project_id: Uuid,
    user_id: Uuid,
    status: String,
    description: String,
    autonomy: String,
    budget: Value,
    options: Value,
    total_tokens: i64,
    total_cost_micros: i64,
    llm_calls: i64,
    current_agent: Option<String>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<RunRow> for Run {
    type Error = StoreError;

    fn try_from(row: RunRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.id,
            project_id: row.project_id,
            user_id: row.user_id,
            status: row.status.parse()?,
            description: row.description,
            autonomy: row.autonomy,
            budget: row.budget,
            options: row.options,
            total_tokens: row.total_tokens,
            total_cost_micros: row.total_cost_micros,
            llm_calls: row.llm_calls,
            current_agent: row.current_agent,
            error: row.error,
            created_at: row.created_at,
            updated_at: row.updated_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
        })
    }
}

/// The statuses a run is not finished in, for "one run at a time" limits.
const ACTIVE_RUN_STATUSES: [RunStatus; 3] = [
    RunStatus::Queued,
    RunStatus::Running,
    RunStatus::WaitingForHuman,
];

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

async fn insert_run(conn: &mut AsyncPgConnection, run: &Run) -> StoreResult<()> {
    diesel::insert_into(runs::table)
        .values((
            runs::id.eq(run.id),
            runs::project_id.eq(run.project_id),
            runs::user_id.eq(run.user_id),
            runs::status.eq(run.status.as_str()),
            runs::description.eq(&run.description),
            runs::autonomy.eq(&run.autonomy),
            runs::budget.eq(&run.budget),
            runs::options.eq(&run.options),
            runs::created_at.eq(run.created_at),
            runs::updated_at.eq(run.created_at),
        ))
        .execute(conn)
        .await
        .map_err(db("run", "creating run"))?;
    Ok(())
}

/// Locks the project's row until the transaction ends, so starts and re-queues of its runs
/// take turns (the "one active run" check would otherwise race under READ COMMITTED).
/// [`StoreError::MissingReference`] when the project does not exist.
async fn lock_project(conn: &mut AsyncPgConnection, project_id: Uuid) -> StoreResult<()> {
    let found: Option<Uuid> = projects::table
        .find(project_id)
        .select(projects::id)
        .for_update()
        .first(conn)
        .await
        .optional()
        .map_err(db("run", "locking the project"))?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::MissingReference {
            entity: "run",
            detail: format!("project {project_id} does not exist"),
        }),
    }
}

/// Whether the project has an active run other than `except`.
async fn other_active_run(
    conn: &mut AsyncPgConnection,
    project_id: Uuid,
    except: Option<Uuid>,
) -> StoreResult<bool> {
    let mut query = runs::table
        .filter(runs::project_id.eq(project_id))
        .filter(runs::status.eq_any(ACTIVE_RUN_STATUSES.map(RunStatus::as_str)))
        .into_boxed();
    if let Some(except) = except {
        query = query.filter(runs::id.ne(except));
    }
    diesel::select(exists(query))
        .get_result(conn)
        .await
        .map_err(db("run", "checking for an active run"))
}

fn busy_project(project_id: Uuid) -> StoreError {
    StoreError::conflict(
        "run",
        format!("project {project_id} already has an active run"),
    )
}

#[async_trait]
impl RunRepo for DieselPgStore {
    async fn create(&self, run: &NewRun) -> StoreResult<Run> {
        const ACTION: &str = "creating run";
        let created = queued_run(Uuid::now_v7(), run);
        let mut conn = self.conn(ACTION).await?;
        insert_run(&mut conn, &created).await?;
        Ok(created)
    }

    async fn get(&self, id: Uuid) -> StoreResult<Run> {
        const ACTION: &str = "loading run";
        let mut conn = self.conn(ACTION).await?;
        runs::table
            .find(id)
            .select(RunRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db("run", ACTION))?
            .ok_or_else(|| StoreError::not_found("run", id))?
            .try_into()
    }

    async fn list_for_project(&self, project_id: Uuid, limit: u32) -> StoreResult<Vec<Run>> {
        const ACTION: &str = "listing runs";
        let limit = validate_limit(limit)?;
        let mut conn = self.conn(ACTION).await?;
        runs::table
            .filter(runs::project_id.eq(project_id))
            .order((runs::created_at.desc(), runs::id.desc()))
            .limit(limit)
            .select(RunRow::as_select())
            .load(&mut conn)
            .await
            .map_err(db("run", ACTION))?
            .into_iter()
            .map(Run::try_from)
            .collect()
    }

    async fn count_active_for_user(&self, user_id: Uuid) -> StoreResult<u64> {
        const ACTION: &str = "counting active runs";
        let mut conn = self.conn(ACTION).await?;
        let count: i64 = runs::table
            .filter(runs::user_id.eq(user_id))
            .filter(runs::status.eq_any(ACTIVE_RUN_STATUSES.map(RunStatus::as_str)))
            .count()
            .get_result(&mut conn)
            .await
            .map_err(db("run", ACTION))?;
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
        let allowed: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let at = now();
        let mut conn = self.conn(ACTION).await?;
        let run = conn
            .transaction::<_, TxError, _>(async |conn| {
                // The status condition makes this a compare-and-swap: of two concurrent
                // transitions from the same status, the second re-checks it after the first
                // commits and no longer matches.
                let row: Option<RunRow> = diesel::sql_query(
                    "UPDATE runs SET
                        status = $2,
                        error = COALESCE($3, error),
                        started_at = CASE WHEN $2 = 'running' THEN COALESCE(started_at, $4)
                                          ELSE started_at END,
                        finished_at = CASE WHEN $5 THEN $4 ELSE finished_at END,
                        updated_at = $4
                     WHERE id = $1 AND status = ANY($6)
                     RETURNING id, project_id, user_id, status, description, autonomy, budget,
                               options, total_tokens, total_cost_micros, llm_calls, current_agent,
                               error, created_at, updated_at, started_at, finished_at",
                )
                .bind::<diesel::sql_types::Uuid, _>(id)
                .bind::<Text, _>(to.as_str())
                .bind::<Nullable<Text>, _>(error)
                .bind::<Timestamptz, _>(at)
                .bind::<Bool, _>(to.is_terminal())
                .bind::<Array<Text>, _>(&allowed)
                .get_result(conn)
                .await
                .optional()
                .map_err(db("run", ACTION))?;
                if let Some(row) = row {
                    return Ok(Run::try_from(row)?);
                }
                let current: Option<String> = runs::table
                    .find(id)
                    .select(runs::status)
                    .first(conn)
                    .await
                    .optional()
                    .map_err(db("run", ACTION))?;
                Err(match current {
                    None => StoreError::not_found("run", id),
                    Some(current) => StoreError::conflict(
                        "run",
                        format!("run {id} is {current}; cannot move it to {to}"),
                    ),
                }
                .into())
            })
            .await?;
        Ok(run)
    }

    async fn start(&self, id: Uuid, run: &NewRun, job: &NewJob) -> StoreResult<(Run, Job)> {
        const ACTION: &str = "starting run";
        validate_job(job)?;
        let created = queued_run(id, run);
        let mut conn = self.conn(ACTION).await?;
        let job = conn
            .transaction::<_, TxError, _>(async |conn| {
                lock_project(conn, run.project_id).await?;
                if other_active_run(conn, run.project_id, None).await? {
                    return Err(busy_project(run.project_id).into());
                }
                insert_run(conn, &created).await?;
                let enqueued = enqueue_in(conn, job).await?;
                if enqueued.deduplicated {
                    return Err(StoreError::conflict(
                        "job",
                        "an unfinished job already holds the dedupe key of the new run's job",
                    )
                    .into());
                }
                Ok(enqueued.job)
            })
            .await?;
        Ok((created, job))
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
        let allowed: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let mut conn = self.conn(ACTION).await?;
        let queued = conn
            .transaction::<_, TxError, _>(async |conn| {
                let project_id: Uuid = runs::table
                    .find(id)
                    .select(runs::project_id)
                    .first(conn)
                    .await
                    .optional()
                    .map_err(db("run", ACTION))?
                    .ok_or_else(|| StoreError::not_found("run", id))?;
                lock_project(conn, project_id).await?;
                let mut update = diesel::update(
                    runs::table
                        .filter(runs::id.eq(id))
                        .filter(runs::status.eq_any(&allowed)),
                )
                .set((
                    runs::status.eq(RunStatus::Queued.as_str()),
                    runs::error.eq(None::<String>),
                    runs::current_agent.eq(None::<String>),
                    runs::finished_at.eq(None::<DateTime<Utc>>),
                    runs::updated_at.eq(now()),
                ))
                .returning(RunRow::as_returning())
                .get_result(conn)
                .await
                .optional()
                .map_err(db("run", ACTION))?;
                if let (Some(row), Some(budget)) = (&mut update, budget) {
                    *row = diesel::update(runs::table.find(id))
                        .set(runs::budget.eq(budget))
                        .returning(RunRow::as_returning())
                        .get_result(conn)
                        .await
                        .map_err(db("run", ACTION))?;
                }
                let Some(row) = update else {
                    let current: Option<String> = runs::table
                        .find(id)
                        .select(runs::status)
                        .first(conn)
                        .await
                        .optional()
                        .map_err(db("run", ACTION))?;
                    return Err(match current {
                        None => StoreError::not_found("run", id),
                        Some(current) => StoreError::conflict(
                            "run",
                            format!("run {id} is {current}; cannot queue it again"),
                        ),
                    }
                    .into());
                };
                if other_active_run(conn, project_id, Some(id)).await? {
                    return Err(busy_project(project_id).into());
                }
                let enqueued = enqueue_in(conn, job).await?;
                Ok((Run::try_from(row)?, enqueued))
            })
            .await?;
        Ok(queued)
    }

    async fn set_current_agent(&self, id: Uuid, agent: Option<&str>) -> StoreResult<()> {
        const ACTION: &str = "setting current agent";
        let mut conn = self.conn(ACTION).await?;
        let rows = diesel::update(runs::table.find(id))
            .set((runs::current_agent.eq(agent), runs::updated_at.eq(now())))
            .execute(&mut conn)
            .await
            .map_err(db("run", ACTION))?;
        touched(rows, "run", id)
    }

    async fn add_totals(
        &self,
        id: Uuid,
        tokens: i64,
        cost_micros: i64,
        llm_calls: i64,
    ) -> StoreResult<Run> {
        const ACTION: &str = "adding run totals";
        if tokens < 0 || cost_micros < 0 || llm_calls < 0 {
            return Err(StoreError::invalid("run totals only grow"));
        }
        let mut conn = self.conn(ACTION).await?;
        diesel::update(runs::table.find(id))
            .set((
                runs::total_tokens.eq(runs::total_tokens + tokens),
                runs::total_cost_micros.eq(runs::total_cost_micros + cost_micros),
                runs::llm_calls.eq(runs::llm_calls + llm_calls),
                runs::updated_at.eq(now()),
            ))
            .returning(RunRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(db("run", ACTION))?
            .ok_or_else(|| StoreError::not_found("run", id))?
            .try_into()
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = run_events, check_for_backend(diesel::pg::Pg))]
struct EventRow {
    run_id: Uuid,
    seq: i64,
    kind: String,
    payload: Value,
    at: DateTime<Utc>,
}

impl From<EventRow> for RunEvent {
    fn from(row: EventRow) -> Self {
        Self {
            run_id: row.run_id,
            seq: row.seq,
            kind: row.kind,
            payload: row.payload,
            at: row.at,
        }
    }
}

#[async_trait]
impl EventRepo for DieselPgStore {
    async fn append(&self, run_id: Uuid, kind: &str, payload: &Value) -> StoreResult<RunEvent> {
        const ACTION: &str = "appending run event";
        validate_name("event kind", kind)?;
        let mut conn = self.conn(ACTION).await?;
        let event = conn
            .transaction::<_, TxError, _>(async |conn| {
                // The counter on the run row hands out sequence numbers: the UPDATE locks the
                // row until commit, so concurrent appends to one run take turns and never see
                // the same number, and a rolled-back append gives its number back.
                let seq: i64 = diesel::update(runs::table.find(run_id))
                    .set(runs::last_event_seq.eq(runs::last_event_seq + 1))
                    .returning(runs::last_event_seq)
                    .get_result(conn)
                    .await
                    .optional()
                    .map_err(db("run event", ACTION))?
                    .ok_or_else(|| StoreError::not_found("run", run_id))?;
                let event = RunEvent {
                    run_id,
                    seq,
                    kind: kind.to_owned(),
                    payload: payload.clone(),
                    at: now(),
                };
                diesel::insert_into(run_events::table)
                    .values((
                        run_events::run_id.eq(run_id),
                        run_events::seq.eq(seq),
                        run_events::kind.eq(kind),
                        run_events::payload.eq(payload),
                        run_events::at.eq(event.at),
                    ))
                    .execute(conn)
                    .await
                    .map_err(db("run event", ACTION))?;
                Ok(event)
            })
            .await?;
        Ok(event)
    }

    async fn after(&self, run_id: Uuid, after_seq: i64, limit: u32) -> StoreResult<Vec<RunEvent>> {
        const ACTION: &str = "reading run events";
        let limit = validate_limit(limit)?;
        let mut conn = self.conn(ACTION).await?;
        Ok(run_events::table
            .filter(run_events::run_id.eq(run_id))
            .filter(run_events::seq.gt(after_seq))
            .order(run_events::seq)
            .limit(limit)
            .select(EventRow::as_select())
            .load(&mut conn)
            .await
            .map_err(db("run event", ACTION))?
            .into_iter()
            .map(RunEvent::from)
            .collect())
    }

    async fn last_seq(&self, run_id: Uuid) -> StoreResult<i64> {
        const ACTION: &str = "reading last event sequence";
        let mut conn = self.conn(ACTION).await?;
        runs::table
            .find(run_id)
            .select(runs::last_event_seq)
            .first(&mut conn)
            .await
            .optional()
            .map_err(db("run event", ACTION))?
            .ok_or_else(|| StoreError::not_found("run", run_id))
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = questions, check_for_backend(diesel::pg::Pg))]
struct QuestionRow {
    id: Uuid,
    run_id: Uuid,
    text: String,
    buttons: Value,
    default_answer: Option<String>,
    asked_at: DateTime<Utc>,
    answer: Option<String>,
    answered_at: Option<DateTime<Utc>>,
}

impl From<QuestionRow> for Question {
    fn from(row: QuestionRow) -> Self {
        Self {
            id: row.id,
            run_id: row.run_id,
            text: row.text,
            buttons: row.buttons,
            default_answer: row.default_answer,
            asked_at: row.asked_at,
            answer: row.answer,
            answered_at: row.answered_at,
        }
    }
}

#[async_trait]
impl QuestionRepo for DieselPgStore {
    async fn ask(&self, question: &NewQuestion) -> StoreResult<Question> {
        const ACTION: &str = "asking question";
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
        let mut conn = self.conn(ACTION).await?;
        diesel::insert_into(questions::table)
            .values((
                questions::id.eq(asked.id),
                questions::run_id.eq(asked.run_id),
                questions::text.eq(&asked.text),
                questions::buttons.eq(&asked.buttons),
                questions::default_answer.eq(&asked.default_answer),
                questions::asked_at.eq(asked.asked_at),
            ))
            .execute(&mut conn)
            .await
            .map_err(db("question", ACTION))?;
        Ok(asked)
    }

    async fn get(&self, id: Uuid) -> StoreResult<Question> {
        const ACTION: &str = "loading question";
        let mut conn = self.conn(ACTION).await?;
        questions::table
            .find(id)
            .select(QuestionRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db("question", ACTION))?
            .map(Question::from)
            .ok_or_else(|| StoreError::not_found("question", id))
    }

    async fn answer(&self, id: Uuid, answer: &str) -> StoreResult<Question> {
        const ACTION: &str = "answering question";
        let mut conn = self.conn(ACTION).await?;
        let question = conn
            .transaction::<_, TxError, _>(async |conn| {
                // Only an unanswered question matches, so the first answer stands.
                let row = diesel::update(
                    questions::table
                        .find(id)
                        .filter(questions::answered_at.is_null()),
                )
                .set((
                    questions::answer.eq(answer),
                    questions::answered_at.eq(now()),
                ))
                .returning(QuestionRow::as_returning())
                .get_result(conn)
                .await
                .optional()
                .map_err(db("question", ACTION))?;
                if let Some(row) = row {
                    return Ok(Question::from(row));
                }
                let asked = diesel::select(exists(questions::table.find(id)))
                    .get_result::<bool>(conn)
                    .await
                    .map_err(db("question", ACTION))?;
                Err(if asked {
                    StoreError::conflict("question", format!("question {id} was already answered"))
                } else {
                    StoreError::not_found("question", id)
                }
                .into())
            })
            .await?;
        Ok(question)
    }

    async fn pending(&self, run_id: Uuid) -> StoreResult<Vec<Question>> {
        const ACTION: &str = "listing pending questions";
        let mut conn = self.conn(ACTION).await?;
        Ok(questions::table
            .filter(questions::run_id.eq(run_id))
            .filter(questions::answered_at.is_null())
            .order((questions::asked_at, questions::id))
            .select(QuestionRow::as_select())
            .load(&mut conn)
            .await
            .map_err(db("question", ACTION))?
            .into_iter()
            .map(Question::from)
            .collect())
    }

    async fn pending_for_user(&self, user_id: Uuid) -> StoreResult<Vec<Question>> {
        const ACTION: &str = "listing pending questions";
        let mut conn = self.conn(ACTION).await?;
        Ok(questions::table
            .inner_join(runs::table)
            .filter(runs::user_id.eq(user_id))
            .filter(questions::answered_at.is_null())
            .order((questions::asked_at, questions::id))
            .select(QuestionRow::as_select())
            .load(&mut conn)
            .await
            .map_err(db("question", ACTION))?
            .into_iter()
            .map(Question::from)
            .collect())
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = llm_requests, check_for_backend(diesel::pg::Pg))]
struct LlmRow {
    id: Uuid,
    run_id: Uuid,
    step_key: String,
    request_hash: String,
    provider: String,
    model: String,
    agent_role: Option<String>,
    request: Value,
    response: Option<Value>,
    prompt_tokens: i64,
    completion_tokens: i64,
    cached_tokens: i64,
    cost_micros: i64,
    latency_ms: i64,
    outcome: String,
    error: Option<String>,
    at: DateTime<Utc>,
}

impl TryFrom<LlmRow> for LlmRequestRecord {
    type Error = StoreError;

    fn try_from(row: LlmRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.id,
            run_id: row.run_id,
            step_key: row.step_key,
            request_hash: row.request_hash,
            provider: row.provider,
            model: row.model,
            agent_role: row.agent_role,
            request: row.request,
            response: row.response,
            counts: TokenCounts {
                prompt_tokens: row.prompt_tokens,
                completion_tokens: row.completion_tokens,
                cached_tokens: row.cached_tokens,
                cost_micros: row.cost_micros,
            },
            latency_ms: row.latency_ms,
            outcome: row.outcome.parse()?,
            error: row.error,
            at: row.at,
        })
    }
}

#[async_trait]
impl LlmLogRepo for DieselPgStore {
    async fn record(&self, request: &NewLlmRequest) -> StoreResult<LlmRequestRecord> {
        const ACTION: &str = "logging LLM request";
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
        let mut conn = self.conn(ACTION).await?;
        diesel::insert_into(llm_requests::table)
            .values((
                llm_requests::id.eq(record.id),
                llm_requests::run_id.eq(record.run_id),
                llm_requests::step_key.eq(&record.step_key),
                llm_requests::request_hash.eq(&record.request_hash),
                llm_requests::provider.eq(&record.provider),
                llm_requests::model.eq(&record.model),
                llm_requests::agent_role.eq(&record.agent_role),
                llm_requests::request.eq(&record.request),
                llm_requests::response.eq(&record.response),
                llm_requests::prompt_tokens.eq(record.counts.prompt_tokens),
                llm_requests::completion_tokens.eq(record.counts.completion_tokens),
                llm_requests::cached_tokens.eq(record.counts.cached_tokens),
                llm_requests::cost_micros.eq(record.counts.cost_micros),
                llm_requests::latency_ms.eq(record.latency_ms),
                llm_requests::outcome.eq(record.outcome.as_str()),
                llm_requests::error.eq(&record.error),
                llm_requests::at.eq(record.at),
            ))
            .execute(&mut conn)
            .await
            .map_err(db("llm request", ACTION))?;
        Ok(record)
    }

    async fn find_by_hash(&self, request_hash: &str) -> StoreResult<Option<LlmRequestRecord>> {
        const ACTION: &str = "looking up LLM request";
        let mut conn = self.conn(ACTION).await?;
        llm_requests::table
            .filter(llm_requests::request_hash.eq(request_hash))
            .filter(llm_requests::outcome.eq(RequestOutcome::Success.as_str()))
            .order((llm_requests::at.desc(), llm_requests::id.desc()))
            .select(LlmRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db("llm request", ACTION))?
            .map(LlmRequestRecord::try_from)
            .transpose()
    }

    async fn list_for_run(&self, run_id: Uuid) -> StoreResult<Vec<LlmRequestRecord>> {
        const ACTION: &str = "listing LLM requests";
        let mut conn = self.conn(ACTION).await?;
        llm_requests::table
            .filter(llm_requests::run_id.eq(run_id))
            .order((llm_requests::at, llm_requests::id))
            .select(LlmRow::as_select())
            .load(&mut conn)
            .await
            .map_err(db("llm request", ACTION))?
            .into_iter()
            .map(LlmRequestRecord::try_from)
            .collect()
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = command_logs, check_for_backend(diesel::pg::Pg))]
struct CommandRow {
    id: Uuid,
    run_id: Uuid,
    argv: Vec<String>,
    exit_code: Option<i32>,
    stdout: String,
    stderr: String,
    output_truncated: bool,
    duration_ms: i64,
    timed_out: bool,
    at: DateTime<Utc>,
}

impl From<CommandRow> for CommandLog {
    fn from(row: CommandRow) -> Self {
        Self {
            id: row.id,
            run_id: row.run_id,
            argv: row.argv,
            exit_code: row.exit_code,
            stdout: row.stdout,
            stderr: row.stderr,
            output_truncated: row.output_truncated,
            duration_ms: row.duration_ms,
            timed_out: row.timed_out,
            at: row.at,
        }
    }
}

#[async_trait]
impl CommandLogRepo for DieselPgStore {
    async fn record(&self, command: &NewCommandLog) -> StoreResult<CommandLog> {
        const ACTION: &str = "logging command";
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
        let mut conn = self.conn(ACTION).await?;
        diesel::insert_into(command_logs::table)
            .values((
                command_logs::id.eq(log.id),
                command_logs::run_id.eq(log.run_id),
                command_logs::argv.eq(&log.argv),
                command_logs::exit_code.eq(log.exit_code),
                command_logs::stdout.eq(&log.stdout),
                command_logs::stderr.eq(&log.stderr),
                command_logs::output_truncated.eq(log.output_truncated),
                command_logs::duration_ms.eq(log.duration_ms),
                command_logs::timed_out.eq(log.timed_out),
                command_logs::at.eq(log.at),
            ))
            .execute(&mut conn)
            .await
            .map_err(db("command log", ACTION))?;
        Ok(log)
    }

    async fn list_for_run(&self, run_id: Uuid) -> StoreResult<Vec<CommandLog>> {
        const ACTION: &str = "listing commands";
        let mut conn = self.conn(ACTION).await?;
        Ok(command_logs::table
            .filter(command_logs::run_id.eq(run_id))
            .order((command_logs::at, command_logs::id))
            .select(CommandRow::as_select())
            .load(&mut conn)
            .await
            .map_err(db("command log", ACTION))?
            .into_iter()
            .map(CommandLog::from)
            .collect())
    }
}
