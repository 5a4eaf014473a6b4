//! Projects, sealed keys and quota counters on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::{RowExt, SqliteStore, date, err, ts};
use crate::common::{validate_sealed, validate_settings};
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use crate::repo::{KeyRepo, ProjectRepo, QuotaRepo};

macro_rules! project_columns {
    () => {
        "id, owner_id, name, description, archived, created_at, updated_at"
    };
}

fn project_from_row(row: &SqliteRow) -> StoreResult<Project> {
    Ok(Project {
        id: row.col("id")?,
        owner_id: row.col("owner_id")?,
        name: row.col("name")?,
        description: row.col("description")?,
        archived: row.col("archived")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

#[async_trait]
impl ProjectRepo for SqliteStore {
    async fn create(&self, project: &NewProject) -> StoreResult<Project> {
        let name = validate_project_name(&project.name)?;
        let at = now();
        let created = Project {
            id: Uuid::now_v7(),
            owner_id: project.owner_id,
            name: name.to_owned(),
            description: project.description.clone(),
            archived: false,
            created_at: at,
            updated_at: at,
        };
        sqlx::query(
            "INSERT INTO projects (id, owner_id, name, name_key, description, archived,
                                   created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 0, $6, $6)",
        )
        .bind(created.id)
        .bind(created.owner_id)
        .bind(&created.name)
        .bind(name_key(name))
        .bind(&created.description)
        .bind(ts(at))
        .execute(&self.writer)
        .await
        .map_err(err("project", "creating project"))?;
        Ok(created)
    }

    async fn get(&self, id: Uuid) -> StoreResult<Project> {
        sqlx::query(concat!(
            "SELECT ",
            project_columns!(),
            " FROM projects WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(err("project", "loading project"))?
        .map(|row| project_from_row(&row))
        .transpose()?
        .ok_or_else(|| StoreError::not_found("project", id))
    }

    async fn get_owned(&self, owner_id: Uuid, id: Uuid) -> StoreResult<Project> {
        sqlx::query(concat!(
            "SELECT ",
            project_columns!(),
            " FROM projects WHERE id = $1 AND owner_id = $2"
        ))
        .bind(id)
        .bind(owner_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(err("project", "loading project"))?
        .map(|row| project_from_row(&row))
        .transpose()?
        .ok_or_else(|| StoreError::not_found("project", id))
    }

    async fn update(&self, id: Uuid, update: &ProjectUpdate) -> StoreResult<Project> {
        let name = update
            .name
            .as_deref()
            .map(validate_project_name)
            .transpose()?;
        let (set_description, description) = match &update.description {
            Some(value) => (true, value.clone()),
            None => (false, None),
        };
        sqlx::query(concat!(
            "UPDATE projects SET
                name = COALESCE($2, name),
                name_key = COALESCE($3, name_key),
                description = CASE WHEN $4 THEN $5 ELSE description END,
                archived = COALESCE($6, archived),
                updated_at = $7
             WHERE id = $1
             RETURNING ",
            project_columns!()
        ))
        .bind(id)
        .bind(name)
        .bind(name.map(name_key))
        .bind(set_description)
        .bind(description)
        .bind(update.archived)
        .bind(ts(now()))
        .fetch_optional(&self.writer)
        .await
        .map_err(err("project", "updating project"))?
        .map(|row| project_from_row(&row))
        .transpose()?
        .ok_or_else(|| StoreError::not_found("project", id))
    }

    async fn delete(&self, id: Uuid) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(err("project", "deleting project"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("project", id));
        }
        Ok(())
    }

    async fn list(&self, query: &ProjectQuery) -> StoreResult<Page<Project>> {
        let limit = validate_limit(query.limit)?;
        let cursor = query.cursor.as_deref().map(Cursor::decode).transpose()?;
        let pattern = query
            .name_contains
            .as_deref()
            .map(|text| format!("%{}%", like_escape(&name_key(text))));
        // Two statements rather than one with "cursor IS NULL OR ...": a plan prepared once
        // then walks the (owner, created_at, id) index from the cursor instead of from the top.
        let sql = if cursor.is_some() {
            concat!(
                "SELECT ",
                project_columns!(),
                " FROM projects
                 WHERE owner_id = $1
                   AND ($2 OR archived = 0)
                   AND ($3 IS NULL OR name_key LIKE $3 ESCAPE '\\')
                   AND (created_at, id) < ($5, $6)
                 ORDER BY created_at DESC, id DESC
                 LIMIT $4"
            )
        } else {
            concat!(
                "SELECT ",
                project_columns!(),
                " FROM projects
                 WHERE owner_id = $1
                   AND ($2 OR archived = 0)
                   AND ($3 IS NULL OR name_key LIKE $3 ESCAPE '\\')
                 ORDER BY created_at DESC, id DESC
                 LIMIT $4"
            )
        };
        // One more row than asked tells whether there is a next page.
        let mut statement = sqlx::query(sql)
            .bind(query.owner_id)
            .bind(query.include_archived)
            .bind(pattern)
            .bind(limit + 1);
        if let Some(c) = cursor {
            statement = statement.bind(ts(c.created_at)).bind(c.id);
        }
        let rows = statement
            .fetch_all(&self.reader)
            .await
            .map_err(err("project", "listing projects"))?;
        let mut items = rows
            .iter()
            .map(project_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|p| {
                Cursor {
                    created_at: p.created_at,
                    id: p.id,
                }
                .encode()
            })
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn counts(&self, owner_id: Uuid, since: DateTime<Utc>) -> StoreResult<ProjectCounts> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS total, COALESCE(SUM(created_at >= $2), 0) AS created_since
             FROM projects WHERE owner_id = $1",
        )
        .bind(owner_id)
        .bind(ts(since))
        .fetch_one(&self.reader)
        .await
        .map_err(err("project", "counting projects"))?;
        Ok(ProjectCounts {
            total: row.col::<i64>("total")?.unsigned_abs(),
            created_since: row.col::<i64>("created_since")?.unsigned_abs(),
        })
    }
}

macro_rules! provider_key_columns {
    () => {
        "id, user_id, provider, label, last_four, preferred_model, settings, ciphertext, key_id,
         created_at, updated_at"
    };
}

fn provider_key_from_row(row: &SqliteRow) -> StoreResult<ProviderKey> {
    Ok(ProviderKey {
        id: row.col("id")?,
        user_id: row.col("user_id")?,
        provider: row.col("provider")?,
        label: row.col("label")?,
        last_four: row.col("last_four")?,
        preferred_model: row.col("preferred_model")?,
        settings: row.json("settings")?,
        sealed: SealedSecret {
            ciphertext: row.col("ciphertext")?,
            key_id: row.col("key_id")?,
        },
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

macro_rules! vcs_token_columns {
    () => {
        "id, user_id, host, label, last_four, ciphertext, key_id, created_at, updated_at"
    };
}

fn vcs_token_from_row(row: &SqliteRow) -> StoreResult<VcsToken> {
    Ok(VcsToken {
        id: row.col("id")?,
        user_id: row.col("user_id")?,
        host: row.col("host")?,
        label: row.col("label")?,
        last_four: row.col("last_four")?,
        sealed: SealedSecret {
            ciphertext: row.col("ciphertext")?,
            key_id: row.col("key_id")?,
        },
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

#[async_trait]
impl KeyRepo for SqliteStore {
    async fn put_provider_key(&self, key: &NewProviderKey) -> StoreResult<ProviderKey> {
        validate_name("provider", &key.provider)?;
        validate_last_four(&key.last_four)?;
        validate_sealed(&key.sealed)?;
        validate_settings(&key.settings)?;
        let at = ts(now());
        let row = sqlx::query(concat!(
            "INSERT INTO provider_keys (id, user_id, provider, label, last_four, preferred_model,
                                        settings, ciphertext, key_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
             ON CONFLICT (user_id, provider) DO UPDATE SET
                label = excluded.label, last_four = excluded.last_four,
                preferred_model = excluded.preferred_model, settings = excluded.settings,
                ciphertext = excluded.ciphertext, key_id = excluded.key_id,
                updated_at = excluded.updated_at
             RETURNING ",
            provider_key_columns!()
        ))
        .bind(Uuid::now_v7())
        .bind(key.user_id)
        .bind(&key.provider)
        .bind(&key.label)
        .bind(&key.last_four)
        .bind(&key.preferred_model)
        .bind(key.settings.to_string())
        .bind(&key.sealed.ciphertext)
        .bind(&key.sealed.key_id)
        .bind(at)
        .fetch_one(&self.writer)
        .await
        .map_err(err("provider key", "storing provider key"))?;
        provider_key_from_row(&row)
    }

    async fn provider_key(
        &self,
        user_id: Uuid,
        provider: &str,
    ) -> StoreResult<Option<ProviderKey>> {
        sqlx::query(concat!(
            "SELECT ",
            provider_key_columns!(),
            " FROM provider_keys WHERE user_id = $1 AND provider = $2"
        ))
        .bind(user_id)
        .bind(provider)
        .fetch_optional(&self.reader)
        .await
        .map_err(err("provider key", "loading provider key"))?
        .map(|row| provider_key_from_row(&row))
        .transpose()
    }

    async fn list_provider_keys(&self, user_id: Uuid) -> StoreResult<Vec<ProviderKey>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            provider_key_columns!(),
            " FROM provider_keys WHERE user_id = $1 ORDER BY provider"
        ))
        .bind(user_id)
        .fetch_all(&self.reader)
        .await
        .map_err(err("provider key", "listing provider keys"))?;
        rows.iter().map(provider_key_from_row).collect()
    }

    async fn update_provider_settings(
        &self,
        user_id: Uuid,
        provider: &str,
        preferred_model: Option<&str>,
        settings: &Value,
    ) -> StoreResult<ProviderKey> {
        validate_settings(settings)?;
        sqlx::query(concat!(
            "UPDATE provider_keys SET preferred_model = $3, settings = $4, updated_at = $5
             WHERE user_id = $1 AND provider = $2
             RETURNING ",
            provider_key_columns!()
        ))
        .bind(user_id)
        .bind(provider)
        .bind(preferred_model)
        .bind(settings.to_string())
        .bind(ts(now()))
        .fetch_optional(&self.writer)
        .await
        .map_err(err("provider key", "updating provider settings"))?
        .map(|row| provider_key_from_row(&row))
        .transpose()?
        .ok_or_else(|| StoreError::not_found("provider key", provider))
    }

    async fn delete_provider_key(&self, user_id: Uuid, provider: &str) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM provider_keys WHERE user_id = $1 AND provider = $2")
            .bind(user_id)
            .bind(provider)
            .execute(&self.writer)
            .await
            .map_err(err("provider key", "deleting provider key"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("provider key", provider));
        }
        Ok(())
    }

    async fn put_vcs_token(&self, token: &NewVcsToken) -> StoreResult<VcsToken> {
        validate_name("host", &token.host)?;
        validate_last_four(&token.last_four)?;
        validate_sealed(&token.sealed)?;
        let row = sqlx::query(concat!(
            "INSERT INTO vcs_tokens (id, user_id, host, label, last_four, ciphertext, key_id,
                                     created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
             ON CONFLICT (user_id, host) DO UPDATE SET
                label = excluded.label, last_four = excluded.last_four,
                ciphertext = excluded.ciphertext, key_id = excluded.key_id,
                updated_at = excluded.updated_at
             RETURNING ",
            vcs_token_columns!()
        ))
        .bind(Uuid::now_v7())
        .bind(token.user_id)
        .bind(&token.host)
        .bind(&token.label)
        .bind(&token.last_four)
        .bind(&token.sealed.ciphertext)
        .bind(&token.sealed.key_id)
        .bind(ts(now()))
        .fetch_one(&self.writer)
        .await
        .map_err(err("vcs token", "storing VCS token"))?;
        vcs_token_from_row(&row)
    }

    async fn vcs_token(&self, user_id: Uuid, host: &str) -> StoreResult<Option<VcsToken>> {
        sqlx::query(concat!(
            "SELECT ",
            vcs_token_columns!(),
            " FROM vcs_tokens WHERE user_id = $1 AND host = $2"
        ))
        .bind(user_id)
        .bind(host)
        .fetch_optional(&self.reader)
        .await
        .map_err(err("vcs token", "loading VCS token"))?
        .map(|row| vcs_token_from_row(&row))
        .transpose()
    }

    async fn list_vcs_tokens(&self, user_id: Uuid) -> StoreResult<Vec<VcsToken>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            vcs_token_columns!(),
            " FROM vcs_tokens WHERE user_id = $1 ORDER BY host"
        ))
        .bind(user_id)
        .fetch_all(&self.reader)
        .await
        .map_err(err("vcs token", "listing VCS tokens"))?;
        rows.iter().map(vcs_token_from_row).collect()
    }

    async fn delete_vcs_token(&self, user_id: Uuid, host: &str) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM vcs_tokens WHERE user_id = $1 AND host = $2")
            .bind(user_id)
            .bind(host)
            .execute(&self.writer)
            .await
            .map_err(err("vcs token", "deleting VCS token"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("vcs token", host));
        }
        Ok(())
    }

    async fn list_sealed(&self, except_key_id: Option<&str>) -> StoreResult<Vec<SealedEntry>> {
        let rows = sqlx::query(
            "SELECT 'provider_key' AS kind, id, user_id, ciphertext, key_id FROM provider_keys
             WHERE $1 IS NULL OR key_id <> $1
             UNION ALL
             SELECT 'vcs_token' AS kind, id, user_id, ciphertext, key_id FROM vcs_tokens
             WHERE $1 IS NULL OR key_id <> $1
             ORDER BY kind, id",
        )
        .bind(except_key_id)
        .fetch_all(&self.reader)
        .await
        .map_err(err("sealed secret", "listing sealed secrets"))?;
        rows.iter()
            .map(|row| {
                Ok(SealedEntry {
                    kind: row.parsed("kind")?,
                    id: row.col("id")?,
                    user_id: row.col("user_id")?,
                    sealed: SealedSecret {
                        ciphertext: row.col("ciphertext")?,
                        key_id: row.col("key_id")?,
                    },
                })
            })
            .collect()
    }

    async fn reseal(
        &self,
        kind: SecretKind,
        id: Uuid,
        expected: &SealedSecret,
        replacement: &SealedSecret,
    ) -> StoreResult<bool> {
        validate_sealed(replacement)?;
        let sql = match kind {
            SecretKind::ProviderKey => {
                "UPDATE provider_keys SET ciphertext = $4, key_id = $5, updated_at = $6
                 WHERE id = $1 AND ciphertext = $2 AND key_id = $3"
            }
            SecretKind::VcsToken => {
                "UPDATE vcs_tokens SET ciphertext = $4, key_id = $5, updated_at = $6
                 WHERE id = $1 AND ciphertext = $2 AND key_id = $3"
            }
        };
        let done = sqlx::query(sql)
            .bind(id)
            .bind(&expected.ciphertext)
            .bind(&expected.key_id)
            .bind(&replacement.ciphertext)
            .bind(&replacement.key_id)
            .bind(ts(now()))
            .execute(&self.writer)
            .await
            .map_err(err("sealed secret", "re-sealing secret"))?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl QuotaRepo for SqliteStore {
    async fn try_consume(
        &self,
        user_id: Uuid,
        kind: QuotaKind,
        period_start: NaiveDate,
        limit: i64,
    ) -> StoreResult<QuotaDecision> {
        const ACTION: &str = "consuming quota";
        if limit >= 1 {
            // The conditional upsert is the increment-and-check: it only bumps a counter that is
            // still under the limit, and inserting a first row at 1 is fine since limit >= 1.
            let used: Option<i64> = sqlx::query_scalar(
                "INSERT INTO quota_counters (user_id, kind, period_start, used)
                 VALUES ($1, $2, $3, 1)
                 ON CONFLICT (user_id, kind, period_start)
                 DO UPDATE SET used = used + 1 WHERE quota_counters.used < $4
                 RETURNING used",
            )
            .bind(user_id)
            .bind(kind.as_str())
            .bind(date(period_start))
            .bind(limit)
            .fetch_optional(&self.writer)
            .await
            .map_err(err("quota counter", ACTION))?;
            if let Some(used) = used {
                return Ok(QuotaDecision {
                    allowed: true,
                    used,
                    limit,
                });
            }
        }
        let used: Option<i64> = sqlx::query_scalar(
            "SELECT used FROM quota_counters WHERE user_id = $1 AND kind = $2 AND period_start = $3",
        )
        .bind(user_id)
        .bind(kind.as_str())
        .bind(date(period_start))
        .fetch_optional(&self.writer)
        .await
        .map_err(err("quota counter", ACTION))?;
        Ok(QuotaDecision {
            allowed: false,
            used: used.unwrap_or(0),
            limit,
        })
    }

    async fn used(
        &self,
        user_id: Uuid,
        kind: QuotaKind,
        period_start: NaiveDate,
    ) -> StoreResult<i64> {
        let used: Option<i64> = sqlx::query_scalar(
            "SELECT used FROM quota_counters WHERE user_id = $1 AND kind = $2 AND period_start = $3",
        )
        .bind(user_id)
        .bind(kind.as_str())
        .bind(date(period_start))
        .fetch_optional(&self.reader)
        .await
        .map_err(err("quota counter", "reading quota counter"))?;
        Ok(used.unwrap_or(0))
    }
}
