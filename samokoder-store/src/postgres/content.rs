//! Usage, notifications, analytics and the audit log on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::{PgStore, RowExt, err};
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use crate::repo::{AnalyticsRepo, AuditRepo, NotificationRepo, UsageRepo};

macro_rules! usage_columns {
    () => {
        "id, user_id, project_id, run_id, provider, model, agent_role, prompt_tokens,
         completion_tokens, cached_tokens, cost_micros, latency_ms, outcome, at"
    };
}

fn usage_from_row(row: &PgRow) -> StoreResult<UsageRecord> {
    Ok(UsageRecord {
        id: row.col("id")?,
        user_id: row.col("user_id")?,
        project_id: row.col("project_id")?,
        run_id: row.col("run_id")?,
        provider: row.col("provider")?,
        model: row.col("model")?,
        agent_role: row.col("agent_role")?,
        counts: counts_from_row(row)?,
        latency_ms: row.col("latency_ms")?,
        outcome: row.parsed("outcome")?,
        at: row.col("at")?,
    })
}

pub(super) fn counts_from_row(row: &PgRow) -> StoreResult<TokenCounts> {
    Ok(TokenCounts {
        prompt_tokens: row.col("prompt_tokens")?,
        completion_tokens: row.col("completion_tokens")?,
        cached_tokens: row.col("cached_tokens")?,
        cost_micros: row.col("cost_micros")?,
    })
}

#[async_trait]
impl UsageRepo for PgStore {
    async fn record(&self, usage: &NewUsageRecord) -> StoreResult<UsageRecord> {
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
        sqlx::query(concat!(
            "INSERT INTO usage_records (",
            usage_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(record.id)
        .bind(record.user_id)
        .bind(record.project_id)
        .bind(record.run_id)
        .bind(&record.provider)
        .bind(&record.model)
        .bind(&record.agent_role)
        .bind(record.counts.prompt_tokens)
        .bind(record.counts.completion_tokens)
        .bind(record.counts.cached_tokens)
        .bind(record.counts.cost_micros)
        .bind(record.latency_ms)
        .bind(record.outcome.as_str())
        .bind(record.at)
        .execute(&self.pool)
        .await
        .map_err(err("usage record", "recording usage"))?;
        Ok(record)
    }

    async fn list(
        &self,
        user_id: Uuid,
        range: TimeRange,
        limit: u32,
    ) -> StoreResult<Vec<UsageRecord>> {
        range.validate()?;
        let limit = validate_limit(limit)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            usage_columns!(),
            " FROM usage_records WHERE user_id = $1 AND at >= $2 AND at < $3
              ORDER BY at DESC, id DESC LIMIT $4"
        ))
        .bind(user_id)
        .bind(range.from)
        .bind(range.to)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(err("usage record", "listing usage"))?;
        rows.iter().map(usage_from_row).collect()
    }

    async fn aggregate(
        &self,
        user_id: Uuid,
        range: TimeRange,
        grouping: UsageGrouping,
    ) -> StoreResult<Vec<UsageBucket>> {
        range.validate()?;
        // Only fixed fragments are spliced in; every value is bound.
        let period = match grouping.period {
            None => "NULL::date",
            Some(Period::Day) => "date_trunc('day', at AT TIME ZONE 'UTC')::date",
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
        let sql = format!(
            "SELECT {period} AS period, {provider} AS provider, {model} AS model,
                    COUNT(*) AS requests,
                    SUM(prompt_tokens)::bigint AS prompt_tokens,
                    SUM(completion_tokens)::bigint AS completion_tokens,
                    SUM(cached_tokens)::bigint AS cached_tokens,
                    SUM(cost_micros)::bigint AS cost_micros
             FROM usage_records WHERE user_id = $1 AND at >= $2 AND at < $3
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(user_id)
            .bind(range.from)
            .bind(range.to)
            .fetch_all(&self.pool)
            .await
            .map_err(err("usage record", "aggregating usage"))?;
        rows.iter()
            .map(|row| {
                Ok(UsageBucket {
                    period_start: row.col("period")?,
                    provider: row.col("provider")?,
                    model: row.col("model")?,
                    requests: row.col("requests")?,
                    counts: counts_from_row(row)?,
                })
            })
            .collect()
    }
}

macro_rules! notification_columns {
    () => {
        "id, user_id, kind, title, body, data, read_at, created_at"
    };
}

fn notification_from_row(row: &PgRow) -> StoreResult<Notification> {
    Ok(Notification {
        id: row.col("id")?,
        user_id: row.col("user_id")?,
        kind: row.col("kind")?,
        title: row.col("title")?,
        body: row.col("body")?,
        data: row.col("data")?,
        read_at: row.col("read_at")?,
        created_at: row.col("created_at")?,
    })
}

#[async_trait]
impl NotificationRepo for PgStore {
    async fn create(&self, notification: &NewNotification) -> StoreResult<Notification> {
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
        sqlx::query(
            "INSERT INTO notifications (id, user_id, kind, title, body, data, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(created.id)
        .bind(created.user_id)
        .bind(&created.kind)
        .bind(&created.title)
        .bind(&created.body)
        .bind(&created.data)
        .bind(created.created_at)
        .execute(&self.pool)
        .await
        .map_err(err("notification", "creating notification"))?;
        Ok(created)
    }

    async fn list(&self, query: &NotificationQuery) -> StoreResult<Vec<Notification>> {
        let limit = validate_limit(query.limit)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            notification_columns!(),
            " FROM notifications
              WHERE user_id = $1 AND (NOT $2 OR read_at IS NULL) AND ($3 IS NULL OR id < $3)
              ORDER BY id DESC LIMIT $4"
        ))
        .bind(query.user_id)
        .bind(query.unread_only)
        .bind(query.before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(err("notification", "listing notifications"))?;
        rows.iter().map(notification_from_row).collect()
    }

    async fn mark_read(&self, user_id: Uuid, id: Uuid) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE notifications SET read_at = COALESCE(read_at, $3)
             WHERE id = $1 AND user_id = $2",
        )
        .bind(id)
        .bind(user_id)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(err("notification", "marking notification read"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("notification", id));
        }
        Ok(())
    }

    async fn mark_all_read(&self, user_id: Uuid) -> StoreResult<u64> {
        Ok(sqlx::query(
            "UPDATE notifications SET read_at = $2 WHERE user_id = $1 AND read_at IS NULL",
        )
        .bind(user_id)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(err("notification", "marking notifications read"))?
        .rows_affected())
    }

    async fn unread_count(&self, user_id: Uuid) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await
        .map_err(err("notification", "counting unread notifications"))?;
        Ok(count.unsigned_abs())
    }

    async fn delete(&self, user_id: Uuid, id: Uuid) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM notifications WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(err("notification", "deleting notification"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("notification", id));
        }
        Ok(())
    }
}

fn analytics_from_row(row: &PgRow) -> StoreResult<AnalyticsEvent> {
    Ok(AnalyticsEvent {
        id: row.col("id")?,
        user_id: row.col("user_id")?,
        name: row.col("name")?,
        properties: row.col("properties")?,
        at: row.col("at")?,
    })
}

fn event_counts(rows: &[PgRow]) -> StoreResult<Vec<EventCount>> {
    rows.iter()
        .map(|row| {
            Ok(EventCount {
                name: row.col("name")?,
                count: row.col("count")?,
            })
        })
        .collect()
}

#[async_trait]
impl AnalyticsRepo for PgStore {
    async fn record(&self, event: &NewAnalyticsEvent) -> StoreResult<AnalyticsEvent> {
        validate_name("event name", &event.name)?;
        let recorded = AnalyticsEvent {
            id: Uuid::now_v7(),
            user_id: event.user_id,
            name: event.name.clone(),
            properties: event.properties.clone(),
            at: truncate_micros(event.at),
        };
        sqlx::query(
            "INSERT INTO analytics_events (id, user_id, name, properties, at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(recorded.id)
        .bind(recorded.user_id)
        .bind(&recorded.name)
        .bind(&recorded.properties)
        .bind(recorded.at)
        .execute(&self.pool)
        .await
        .map_err(err("analytics event", "recording analytics event"))?;
        Ok(recorded)
    }

    async fn list_for_user(
        &self,
        user_id: Uuid,
        range: TimeRange,
        limit: u32,
    ) -> StoreResult<Vec<AnalyticsEvent>> {
        range.validate()?;
        let limit = validate_limit(limit)?;
        let rows = sqlx::query(
            "SELECT id, user_id, name, properties, at FROM analytics_events
             WHERE user_id = $1 AND at >= $2 AND at < $3
             ORDER BY at DESC, id DESC LIMIT $4",
        )
        .bind(user_id)
        .bind(range.from)
        .bind(range.to)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(err("analytics event", "listing analytics events"))?;
        rows.iter().map(analytics_from_row).collect()
    }

    async fn counts_for_user(
        &self,
        user_id: Uuid,
        range: TimeRange,
    ) -> StoreResult<Vec<EventCount>> {
        range.validate()?;
        let rows = sqlx::query(
            "SELECT name, COUNT(*) AS count FROM analytics_events
             WHERE user_id = $1 AND at >= $2 AND at < $3
             GROUP BY name ORDER BY count DESC, name",
        )
        .bind(user_id)
        .bind(range.from)
        .bind(range.to)
        .fetch_all(&self.pool)
        .await
        .map_err(err("analytics event", "counting analytics events"))?;
        event_counts(&rows)
    }

    async fn summary(&self, range: TimeRange) -> StoreResult<AnalyticsSummary> {
        range.validate()?;
        let totals = sqlx::query(
            "SELECT COUNT(*) AS total, COUNT(DISTINCT user_id) AS users FROM analytics_events
             WHERE at >= $1 AND at < $2",
        )
        .bind(range.from)
        .bind(range.to)
        .fetch_one(&self.pool)
        .await
        .map_err(err("analytics event", "summarising analytics"))?;
        let rows = sqlx::query(
            "SELECT name, COUNT(*) AS count FROM analytics_events
             WHERE at >= $1 AND at < $2
             GROUP BY name ORDER BY count DESC, name",
        )
        .bind(range.from)
        .bind(range.to)
        .fetch_all(&self.pool)
        .await
        .map_err(err("analytics event", "summarising analytics"))?;
        Ok(AnalyticsSummary {
            total_events: totals.col("total")?,
            distinct_users: totals.col("users")?,
            by_name: event_counts(&rows)?,
        })
    }

    async fn export(
        &self,
        range: TimeRange,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<AnalyticsEvent>> {
        range.validate()?;
        let limit = validate_limit(limit)?;
        let rows = sqlx::query(
            "SELECT id, user_id, name, properties, at FROM analytics_events
             WHERE at >= $1 AND at < $2 AND ($3 IS NULL OR id > $3)
             ORDER BY id LIMIT $4",
        )
        .bind(range.from)
        .bind(range.to)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(err("analytics event", "exporting analytics events"))?;
        rows.iter().map(analytics_from_row).collect()
    }

    async fn purge_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM analytics_events WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(err("analytics event", "purging analytics events"))?
            .rows_affected())
    }
}

fn audit_from_row(row: &PgRow) -> StoreResult<AuditEntry> {
    Ok(AuditEntry {
        id: row.col("id")?,
        actor_id: row.col("actor_id")?,
        subject_id: row.col("subject_id")?,
        action: row.parsed("action")?,
        client: row.col("client")?,
        detail: row.col("detail")?,
        at: row.col("at")?,
    })
}

#[async_trait]
impl AuditRepo for PgStore {
    async fn append(&self, entry: &NewAuditEntry) -> StoreResult<AuditEntry> {
        let appended = AuditEntry {
            id: Uuid::now_v7(),
            actor_id: entry.actor_id,
            subject_id: entry.subject_id,
            action: entry.action,
            client: entry.client.clone(),
            detail: entry.detail.clone(),
            at: truncate_micros(entry.at),
        };
        sqlx::query(
            "INSERT INTO audit_log (id, actor_id, subject_id, action, client, detail, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(appended.id)
        .bind(appended.actor_id)
        .bind(appended.subject_id)
        .bind(appended.action.as_str())
        .bind(&appended.client)
        .bind(&appended.detail)
        .bind(appended.at)
        .execute(&self.pool)
        .await
        .map_err(err("audit entry", "appending audit entry"))?;
        Ok(appended)
    }

    async fn list(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let limit = validate_limit(query.limit)?;
        let rows = sqlx::query(
            "SELECT id, actor_id, subject_id, action, client, detail, at FROM audit_log
             WHERE ($1 IS NULL OR actor_id = $1 OR subject_id = $1)
               AND ($2 IS NULL OR action = $2)
               AND ($3 IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
        )
        .bind(query.user_id)
        .bind(query.action.map(AuditAction::as_str))
        .bind(query.before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(err("audit entry", "listing audit entries"))?;
        rows.iter().map(audit_from_row).collect()
    }
}
