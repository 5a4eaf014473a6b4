//! Usage, notifications, analytics and the audit log.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::dsl::{count, count_star, sql};
use diesel::prelude::*;
use diesel::sql_types::{Date, Int8, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use serde_json::Value;
use uuid::Uuid;

use super::errors::{TxError, db};
use super::schema::{analytics_events, audit_log, notifications, usage_records};
use super::{DieselPgStore, touched};
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use crate::repo::{AnalyticsRepo, AuditRepo, NotificationRepo, UsageRepo};

#[derive(Queryable, Selectable)]
#[diesel(table_name = usage_records, check_for_backend(diesel::pg::Pg))]
struct UsageRow {
    id: Uuid,
    user_id: Uuid,
    project_id: Option<Uuid>,
    run_id: Option<Uuid>,
    provider: String,
    model: String,
    agent_role: Option<String>,
    prompt_tokens: i64,
    completion_tokens: i64,
    cached_tokens: i64,
    cost_micros: i64,
    latency_ms: i64,
    outcome: String,
    at: DateTime<Utc>,
}

impl TryFrom<UsageRow> for UsageRecord {
    type Error = StoreError;

    fn try_from(row: UsageRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.id,
            user_id: row.user_id,
            project_id: row.project_id,
            run_id: row.run_id,
            provider: row.provider,
            model: row.model,
            agent_role: row.agent_role,
            counts: TokenCounts {
                prompt_tokens: row.prompt_tokens,
                completion_tokens: row.completion_tokens,
                cached_tokens: row.cached_tokens,
                cost_micros: row.cost_micros,
            },
            latency_ms: row.latency_ms,
            outcome: row.outcome.parse()?,
            at: row.at,
        })
    }
}

#[derive(QueryableByName)]
struct BucketRow {
    #[diesel(sql_type = Nullable<Date>)]
    period: Option<NaiveDate>,
    #[diesel(sql_type = Nullable<Text>)]
    provider: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    model: Option<String>,
    #[diesel(sql_type = Int8)]
    requests: i64,
    #[diesel(sql_type = Int8)]
    prompt_tokens: i64,
    #[diesel(sql_type = Int8)]
    completion_tokens: i64,
    #[diesel(sql_type = Int8)]
    cached_tokens: i64,
    #[diesel(sql_type = Int8)]
    cost_micros: i64,
}

#[async_trait]
impl UsageRepo for DieselPgStore {
    async fn record(&self, usage: &NewUsageRecord) -> StoreResult<UsageRecord> {
        const ACTION: &str = "recording usage";
        usage.counts.validate()?;
        validate_name("provider", &usage.provider)?;
        validate_name("model", &usage.model)?;
        let record = UsageRecord {
            id: Uuid::now_v7(),
            user_id: usage.user_id,
            project_id: usage.project_id,
            run_id: usage.run_id,
            provider: usage.provider.clone(),
            model: usage.model.clone(),
            agent_role: usage.agent_role.clone(),
            counts: usage.counts,
            latency_ms: usage.latency_ms,
            outcome: usage.outcome,
            at: truncate_micros(usage.at),
        };
        let mut conn = self.conn(ACTION).await?;
        diesel::insert_into(usage_records::table)
            .values((
                usage_records::id.eq(record.id),
                usage_records::user_id.eq(record.user_id),
                usage_records::project_id.eq(record.project_id),
                usage_records::run_id.eq(record.run_id),
                usage_records::provider.eq(&record.provider),
                usage_records::model.eq(&record.model),
                usage_records::agent_role.eq(&record.agent_role),
                usage_records::prompt_tokens.eq(record.counts.prompt_tokens),
                usage_records::completion_tokens.eq(record.counts.completion_tokens),
                usage_records::cached_tokens.eq(record.counts.cached_tokens),
                usage_records::cost_micros.eq(record.counts.cost_micros),
                usage_records::latency_ms.eq(record.latency_ms),
                usage_records::outcome.eq(record.outcome.as_str()),
                usage_records::at.eq(record.at),
            ))
            .execute(&mut conn)
            .await
            .map_err(db("usage record", ACTION))?;
        Ok(record)
    }

    async fn list(
        &self,
        user_id: Uuid,
        range: TimeRange,
        limit: u32,
    ) -> StoreResult<Vec<UsageRecord>> {
        const ACTION: &str = "listing usage";
        range.validate()?;
        let limit = validate_limit(limit)?;
        let mut conn = self.conn(ACTION).await?;
        usage_records::table
            .filter(usage_records::user_id.eq(user_id))
            .filter(usage_records::at.ge(range.from))
            .filter(usage_records::at.lt(range.to))
            .order((usage_records::at.desc(), usage_records::id.desc()))
            .limit(limit)
            .select(UsageRow::as_select())
            .load(&mut conn)
            .await
            .map_err(db("usage record", ACTION))?
            .into_iter()
            .map(UsageRecord::try_from)
            .collect()
    }

    async fn aggregate(
        &self,
        user_id: Uuid,
        range: TimeRange,
        grouping: UsageGrouping,
    ) -> StoreResult<Vec<UsageBucket>> {
        const ACTION: &str = "aggregating usage";
        range.validate()?;
        // Only these fixed fragments are spliced into the SQL; every value is bound. Periods are
        // UTC calendar days and months; SUM of BIGINT is NUMERIC in PostgreSQL, hence the casts.
        let period = match grouping.period {
            None => "NULL::date",
            Some(Period::Day) => "(at AT TIME ZONE 'UTC')::date",
            Some(Period::Month) => "date_trunc('month', at AT TIME ZONE 'UTC')::date",
        };
        let provider = if grouping.by_provider {
            "provider"
        } else {
            "NULL::text"
        };
        let model = if grouping.by_model {
            "model"
        } else {
            "NULL::text"
        };
        let query = format!(
            "SELECT {period} AS period, {provider} AS provider, {model} AS model,
                    COUNT(*) AS requests,
                    SUM(prompt_tokens)::bigint AS prompt_tokens,
                    SUM(completion_tokens)::bigint AS completion_tokens,
                    SUM(cached_tokens)::bigint AS cached_tokens,
                    SUM(cost_micros)::bigint AS cost_micros
             FROM usage_records WHERE user_id = $1 AND at >= $2 AND at < $3
             GROUP BY 1, 2, 3"
        );
        let mut conn = self.conn(ACTION).await?;
        let rows: Vec<BucketRow> = diesel::sql_query(query)
            .bind::<diesel::sql_types::Uuid, _>(user_id)
            .bind::<Timestamptz, _>(range.from)
            .bind::<Timestamptz, _>(range.to)
            .load(&mut conn)
            .await
            .map_err(db("usage record", ACTION))?;
        let mut buckets: Vec<UsageBucket> = rows
            .into_iter()
            .map(|row| UsageBucket {
                period_start: row.period,
                provider: row.provider,
                model: row.model,
                requests: row.requests,
                counts: TokenCounts {
                    prompt_tokens: row.prompt_tokens,
                    completion_tokens: row.completion_tokens,
                    cached_tokens: row.cached_tokens,
                    cost_micros: row.cost_micros,
                },
            })
            .collect();
        // Ordered here rather than in SQL: bytewise text order whatever the database collation.
        buckets.sort_by(|a, b| {
            (a.period_start, &a.provider, &a.model).cmp(&(b.period_start, &b.provider, &b.model))
        });
        Ok(buckets)
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = notifications, check_for_backend(diesel::pg::Pg))]
struct NotificationRow {
    id: Uuid,
    user_id: Uuid,
    kind: String,
    title: String,
    body: String,
    data: Value,
    read_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<NotificationRow> for Notification {
    fn from(row: NotificationRow) -> Self {
        Self {
            id: row.id,
            user_id: row.user_id,
            kind: row.kind,
            title: row.title,
            body: row.body,
            data: row.data,
            read_at: row.read_at,
            created_at: row.created_at,
        }
    }
}

#[async_trait]
impl NotificationRepo for DieselPgStore {
    async fn create(&self, notification: &NewNotification) -> StoreResult<Notification> {
        const ACTION: &str = "creating notification";
        validate_name("notification kind", &notification.kind)?;
        let created = Notification {
            id: Uuid::now_v7(),
            user_id: notification.user_id,
            kind: notification.kind.clone(),
            title: notification.title.clone(),
            body: notification.body.clone(),
            data: notification.data.clone(),
            read_at: None,
            created_at: now(),
        };
        let mut conn = self.conn(ACTION).await?;
        diesel::insert_into(notifications::table)
            .values((
                notifications::id.eq(created.id),
                notifications::user_id.eq(created.user_id),
                notifications::kind.eq(&created.kind),
                notifications::title.eq(&created.title),
                notifications::body.eq(&created.body),
                notifications::data.eq(&created.data),
                notifications::created_at.eq(created.created_at),
            ))
            .execute(&mut conn)
            .await
            .map_err(db("notification", ACTION))?;
        Ok(created)
    }

    async fn list(&self, query: &NotificationQuery) -> StoreResult<Vec<Notification>> {
        const ACTION: &str = "listing notifications";
        let limit = validate_limit(query.limit)?;
        let mut select = notifications::table
            .filter(notifications::user_id.eq(query.user_id))
            .select(NotificationRow::as_select())
            .into_boxed();
        if query.unread_only {
            select = select.filter(notifications::read_at.is_null());
        }
        if let Some(before) = query.before {
            select = select.filter(notifications::id.lt(before));
        }
        let mut conn = self.conn(ACTION).await?;
        Ok(select
            .order(notifications::id.desc())
            .limit(limit)
            .load(&mut conn)
            .await
            .map_err(db("notification", ACTION))?
            .into_iter()
            .map(Notification::from)
            .collect())
    }

    async fn mark_read(&self, user_id: Uuid, id: Uuid) -> StoreResult<()> {
        const ACTION: &str = "marking notification read";
        let mut conn = self.conn(ACTION).await?;
        // Idempotent, and the first read time stays; the row still counts as touched, so a
        // missing (or someone else's) notification is told apart from an already read one.
        let rows = diesel::update(
            notifications::table
                .find(id)
                .filter(notifications::user_id.eq(user_id)),
        )
        .set(
            notifications::read_at.eq(sql::<Nullable<Timestamptz>>("COALESCE(read_at, ")
                .bind::<Timestamptz, _>(now())
                .sql(")")),
        )
        .execute(&mut conn)
        .await
        .map_err(db("notification", ACTION))?;
        touched(rows, "notification", id)
    }

    async fn mark_all_read(&self, user_id: Uuid) -> StoreResult<u64> {
        const ACTION: &str = "marking notifications read";
        let mut conn = self.conn(ACTION).await?;
        let rows = diesel::update(
            notifications::table
                .filter(notifications::user_id.eq(user_id))
                .filter(notifications::read_at.is_null()),
        )
        .set(notifications::read_at.eq(now()))
        .execute(&mut conn)
        .await
        .map_err(db("notification", ACTION))?;
        Ok(rows as u64)
    }

    async fn unread_count(&self, user_id: Uuid) -> StoreResult<u64> {
        const ACTION: &str = "counting unread notifications";
        let mut conn = self.conn(ACTION).await?;
        let count: i64 = notifications::table
            .filter(notifications::user_id.eq(user_id))
            .filter(notifications::read_at.is_null())
            .count()
            .get_result(&mut conn)
            .await
            .map_err(db("notification", ACTION))?;
        Ok(count.unsigned_abs())
    }

    async fn delete(&self, user_id: Uuid, id: Uuid) -> StoreResult<()> {
        const ACTION: &str = "deleting notification";
        let mut conn = self.conn(ACTION).await?;
        let rows = diesel::delete(
            notifications::table
                .find(id)
                .filter(notifications::user_id.eq(user_id)),
        )
        .execute(&mut conn)
        .await
        .map_err(db("notification", ACTION))?;
        touched(rows, "notification", id)
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = analytics_events, check_for_backend(diesel::pg::Pg))]
struct AnalyticsRow {
    id: Uuid,
    user_id: Option<Uuid>,
    name: String,
    properties: Value,
    at: DateTime<Utc>,
}

impl From<AnalyticsRow> for AnalyticsEvent {
    fn from(row: AnalyticsRow) -> Self {
        Self {
            id: row.id,
            user_id: row.user_id,
            name: row.name,
            properties: row.properties,
            at: row.at,
        }
    }
}

/// Most frequent first, ties by name (bytewise, whatever the database collation).
fn event_counts(rows: Vec<(String, i64)>) -> Vec<EventCount> {
    let mut counts: Vec<EventCount> = rows
        .into_iter()
        .map(|(name, count)| EventCount { name, count })
        .collect();
    counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    counts
}

#[async_trait]
impl AnalyticsRepo for DieselPgStore {
    async fn record(&self, event: &NewAnalyticsEvent) -> StoreResult<AnalyticsEvent> {
        const ACTION: &str = "recording analytics event";
        validate_name("event name", &event.name)?;
        let recorded = AnalyticsEvent {
            id: Uuid::now_v7(),
            user_id: event.user_id,
            name: event.name.clone(),
            properties: event.properties.clone(),
            at: truncate_micros(event.at),
        };
        let mut conn = self.conn(ACTION).await?;
        diesel::insert_into(analytics_events::table)
            .values((
                analytics_events::id.eq(recorded.id),
                analytics_events::user_id.eq(recorded.user_id),
                analytics_events::name.eq(&recorded.name),
                analytics_events::properties.eq(&recorded.properties),
                analytics_events::at.eq(recorded.at),
            ))
            .execute(&mut conn)
            .await
            .map_err(db("analytics event", ACTION))?;
        Ok(recorded)
    }

    async fn list_for_user(
        &self,
        user_id: Uuid,
        range: TimeRange,
        limit: u32,
    ) -> StoreResult<Vec<AnalyticsEvent>> {
        const ACTION: &str = "listing analytics events";
        range.validate()?;
        let limit = validate_limit(limit)?;
        let mut conn = self.conn(ACTION).await?;
        Ok(analytics_events::table
            .filter(analytics_events::user_id.eq(user_id))
            .filter(analytics_events::at.ge(range.from))
            .filter(analytics_events::at.lt(range.to))
            .order((analytics_events::at.desc(), analytics_events::id.desc()))
            .limit(limit)
            .select(AnalyticsRow::as_select())
            .load(&mut conn)
            .await
            .map_err(db("analytics event", ACTION))?
            .into_iter()
            .map(AnalyticsEvent::from)
            .collect())
    }

    async fn counts_for_user(
        &self,
        user_id: Uuid,
        range: TimeRange,
    ) -> StoreResult<Vec<EventCount>> {
        const ACTION: &str = "counting analytics events";
        range.validate()?;
        let mut conn = self.conn(ACTION).await?;
        let rows: Vec<(String, i64)> = analytics_events::table
            .filter(analytics_events::user_id.eq(user_id))
            .filter(analytics_events::at.ge(range.from))
            .filter(analytics_events::at.lt(range.to))
            .group_by(analytics_events::name)
            .select((analytics_events::name, count_star()))
            .load(&mut conn)
            .await
            .map_err(db("analytics event", ACTION))?;
        Ok(event_counts(rows))
    }

    async fn summary(&self, range: TimeRange) -> StoreResult<AnalyticsSummary> {
        const ACTION: &str = "summarising analytics";
        range.validate()?;
        let in_range = analytics_events::at
            .ge(range.from)
            .and(analytics_events::at.lt(range.to));
        let mut conn = self.conn(ACTION).await?;
        // Two statements, one snapshot: the totals and the per-name counts agree even while
        // events are being recorded.
        let ((total_events, distinct_users), rows) = conn
            .build_transaction()
            .read_only()
            .repeatable_read()
            .run::<_, TxError, _>(async |conn| {
                let totals: (i64, i64) = analytics_events::table
                    .filter(in_range)
                    .select((
                        count_star(),
                        count(analytics_events::user_id).aggregate_distinct(),
                    ))
                    .get_result(conn)
                    .await
                    .map_err(db("analytics event", ACTION))?;
                let rows: Vec<(String, i64)> = analytics_events::table
                    .filter(in_range)
                    .group_by(analytics_events::name)
                    .select((analytics_events::name, count_star()))
                    .load(conn)
                    .await
                    .map_err(db("analytics event", ACTION))?;
                Ok((totals, rows))
            })
            .await?;
        Ok(AnalyticsSummary {
            total_events,
            distinct_users,
            by_name: event_counts(rows),
        })
    }

    async fn export(
        &self,
        range: TimeRange,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<AnalyticsEvent>> {
        const ACTION: &str = "exporting analytics events";
        range.validate()?;
        let limit = validate_limit(limit)?;
        let mut select = analytics_events::table
            .filter(analytics_events::at.ge(range.from))
            .filter(analytics_events::at.lt(range.to))
            .select(AnalyticsRow::as_select())
            .into_boxed();
        if let Some(after) = after {
            select = select.filter(analytics_events::id.gt(after));
        }
        let mut conn = self.conn(ACTION).await?;
        Ok(select
            .order(analytics_events::id)
            .limit(limit)
            .load(&mut conn)
            .await
            .map_err(db("analytics event", ACTION))?
            .into_iter()
            .map(AnalyticsEvent::from)
            .collect())
    }

    async fn purge_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        const ACTION: &str = "purging analytics events";
        let mut conn = self.conn(ACTION).await?;
        let rows = diesel::delete(analytics_events::table.filter(analytics_events::at.lt(before)))
            .execute(&mut conn)
            .await
            .map_err(db("analytics event", ACTION))?;
        Ok(rows as u64)
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_log, check_for_backend(diesel::pg::Pg))]
struct AuditRow {
    id: Uuid,
    actor_id: Option<Uuid>,
    subject_id: Option<Uuid>,
    action: String,
    client: Option<String>,
    detail: Value,
    at: DateTime<Utc>,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.id,
            actor_id: row.actor_id,
            subject_id: row.subject_id,
            action: row.action.parse()?,
            client: row.client,
            detail: row.detail,
            at: row.at,
        })
    }
}

#[async_trait]
impl AuditRepo for DieselPgStore {
    async fn append(&self, entry: &NewAuditEntry) -> StoreResult<AuditEntry> {
        const ACTION: &str = "appending audit entry";
        let appended = AuditEntry {
            id: Uuid::now_v7(),
            actor_id: entry.actor_id,
            subject_id: entry.subject_id,
            action: entry.action,
            client: entry.client.clone(),
            detail: entry.detail.clone(),
            at: truncate_micros(entry.at),
        };
        let mut conn = self.conn(ACTION).await?;
        diesel::insert_into(audit_log::table)
            .values((
                audit_log::id.eq(appended.id),
                audit_log::actor_id.eq(appended.actor_id),
                audit_log::subject_id.eq(appended.subject_id),
                audit_log::action.eq(appended.action.as_str()),
                audit_log::client.eq(&appended.client),
                audit_log::detail.eq(&appended.detail),
                audit_log::at.eq(appended.at),
            ))
            .execute(&mut conn)
            .await
            .map_err(db("audit entry", ACTION))?;
        Ok(appended)
    }

    async fn list(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        const ACTION: &str = "listing audit entries";
        let limit = validate_limit(query.limit)?;
        let mut select = audit_log::table.select(AuditRow::as_select()).into_boxed();
        if let Some(user) = query.user_id {
            select = select.filter(
                audit_log::actor_id
                    .eq(user)
                    .or(audit_log::subject_id.eq(user)),
            );
        }
        if let Some(action) = query.action {
            select = select.filter(audit_log::action.eq(action.as_str()));
        }
        if let Some(before) = query.before {
            select = select.filter(audit_log::id.lt(before));
        }
        let mut conn = self.conn(ACTION).await?;
        select
            .order(audit_log::id.desc())
            .limit(limit)
            .load(&mut conn)
            .await
            .map_err(db("audit entry", ACTION))?
            .into_iter()
            .map(AuditEntry::try_from)
            .collect()
    }
}
