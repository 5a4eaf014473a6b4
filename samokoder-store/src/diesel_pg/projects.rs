//! Projects, sealed keys and quota counters.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bytea, Date, Int8, Nullable, Text, Timestamptz};
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use serde_json::Value;
use uuid::Uuid;

use super::errors::db;
use super::schema::{projects, provider_keys, quota_counters, vcs_tokens};
use super::{DieselPgStore, sort_by_text, touched};
use crate::common::{validate_sealed, validate_settings};
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use crate::repo::{KeyRepo, ProjectRepo, QuotaRepo};

#[derive(Queryable, Selectable)]
#[diesel(table_name = projects, check_for_backend(diesel::pg::Pg))]
struct ProjectRow {
    id: Uuid,
    owner_id: Uuid,
    name: String,
    description: Option<String>,
    archived: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<ProjectRow> for Project {
    fn from(row: ProjectRow) -> Self {
        Self {
            id: row.id,
            owner_id: row.owner_id,
            name: row.name,
            description: row.description,
            archived: row.archived,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The columns a [`ProjectUpdate`] may change; `None` leaves a column alone (diesel skips it),
/// and `description: Some(None)` sets it to NULL.
#[derive(AsChangeset)]
#[diesel(table_name = projects)]
struct ProjectChanges<'a> {
    name: Option<&'a str>,
    name_key: Option<String>,
    description: Option<Option<&'a str>>,
    archived: Option<bool>,
    updated_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct CountsRow {
    #[diesel(sql_type = Int8)]
    total: i64,
    #[diesel(sql_type = Int8)]
    created_since: i64,
}

#[async_trait]
impl ProjectRepo for DieselPgStore {
    async fn create(&self, project: &NewProject) -> StoreResult<Project> {
        const ACTION: &str = "creating project";
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
        let mut conn = self.conn(ACTION).await?;
        diesel::insert_into(projects::table)
            .values((
                projects::id.eq(created.id),
                projects::owner_id.eq(created.owner_id),
                projects::name.eq(&created.name),
                projects::name_key.eq(name_key(name)),
                projects::description.eq(&created.description),
                projects::archived.eq(false),
                projects::created_at.eq(at),
                projects::updated_at.eq(at),
            ))
            .execute(&mut conn)
            .await
            .map_err(db("project", ACTION))?;
        Ok(created)
    }

    async fn get(&self, id: Uuid) -> StoreResult<Project> {
        const ACTION: &str = "loading project";
        let mut conn = self.conn(ACTION).await?;
        projects::table
            .find(id)
            .select(ProjectRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db("project", ACTION))?
            .map(Project::from)
            .ok_or_else(|| StoreError::not_found("project", id))
    }

    async fn get_owned(&self, owner_id: Uuid, id: Uuid) -> StoreResult<Project> {
        const ACTION: &str = "loading project";
        let mut conn = self.conn(ACTION).await?;
        projects::table
            .find(id)
            .filter(projects::owner_id.eq(owner_id))
            .select(ProjectRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db("project", ACTION))?
            .map(Project::from)
            .ok_or_else(|| StoreError::not_found("project", id))
    }

    async fn update(&self, id: Uuid, update: &ProjectUpdate) -> StoreResult<Project> {
        const ACTION: &str = "updating project";
        let name = update
            .name
            .as_deref()
            .map(validate_project_name)
            .transpose()?;
        let changes = ProjectChanges {
            name,
            name_key: name.map(name_key),
            description: update.description.as_ref().map(Option::as_deref),
            archived: update.archived,
            updated_at: now(),
        };
        let mut conn = self.conn(ACTION).await?;
        diesel::update(projects::table.find(id))
            .set(&changes)
            .returning(ProjectRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(db("project", ACTION))?
            .map(Project::from)
            .ok_or_else(|| StoreError::not_found("project", id))
    }

    async fn delete(&self, id: Uuid) -> StoreResult<()> {
        const ACTION: &str = "deleting project";
        let mut conn = self.conn(ACTION).await?;
        // Runs, states, events and logs go with it (ON DELETE CASCADE); usage keeps its rows.
        let rows = diesel::delete(projects::table.find(id))
            .execute(&mut conn)
            .await
            .map_err(db("project", ACTION))?;
        touched(rows, "project", id)
    }

    async fn list(&self, query: &ProjectQuery) -> StoreResult<Page<Project>> {
        const ACTION: &str = "listing projects";
        let limit = validate_limit(query.limit)?;
        let cursor = query.cursor.as_deref().map(Cursor::decode).transpose()?;
        let mut select = projects::table
            .filter(projects::owner_id.eq(query.owner_id))
            .select(ProjectRow::as_select())
            .into_boxed();
        if !query.include_archived {
            select = select.filter(projects::archived.eq(false));
        }
        if let Some(text) = query.name_contains.as_deref() {
            // Backslash is PostgreSQL's default LIKE escape, the one `like_escape` writes.
            select = select
                .filter(projects::name_key.like(format!("%{}%", like_escape(&name_key(text)))));
        }
        if let Some(cursor) = cursor {
            select = select.filter(
                projects::created_at
                    .lt(cursor.created_at)
                    .or(projects::created_at
                        .eq(cursor.created_at)
                        .and(projects::id.lt(cursor.id))),
            );
        }
        let mut conn = self.conn(ACTION).await?;
        // One more row than asked tells whether there is a next page.
        let mut items: Vec<Project> = select
            .order((projects::created_at.desc(), projects::id.desc()))
            .limit(limit + 1)
            .load::<ProjectRow>(&mut conn)
            .await
            .map_err(db("project", ACTION))?
            .into_iter()
            .map(Project::from)
            .collect();
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
        const ACTION: &str = "counting projects";
        let mut conn = self.conn(ACTION).await?;
        let row: CountsRow = diesel::sql_query(
            "SELECT COUNT(*) AS total, COUNT(*) FILTER (WHERE created_at >= $2) AS created_since
             FROM projects WHERE owner_id = $1",
        )
        .bind::<diesel::sql_types::Uuid, _>(owner_id)
        .bind::<Timestamptz, _>(since)
        .get_result(&mut conn)
        .await
        .map_err(db("project", ACTION))?;
        Ok(ProjectCounts {
            total: row.total.unsigned_abs(),
            created_since: row.created_since.unsigned_abs(),
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = provider_keys, check_for_backend(diesel::pg::Pg))]
struct ProviderKeyRow {
    id: Uuid,
    user_id: Uuid,
    provider: String,
    label: Option<String>,
    last_four: String,
    preferred_model: Option<String>,
    settings: Value,
    ciphertext: Vec<u8>,
    key_id: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<ProviderKeyRow> for ProviderKey {
    fn from(row: ProviderKeyRow) -> Self {
        Self {
            id: row.id,
            user_id: row.user_id,
            provider: row.provider,
            label: row.label,
            last_four: row.last_four,
            preferred_model: row.preferred_model,
            settings: row.settings,
            sealed: SealedSecret {
                ciphertext: row.ciphertext,
                key_id: row.key_id,
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = vcs_tokens, check_for_backend(diesel::pg::Pg))]
struct VcsTokenRow {
    id: Uuid,
    user_id: Uuid,
    host: String,
    label: Option<String>,
    last_four: String,
    ciphertext: Vec<u8>,
    key_id: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<VcsTokenRow> for VcsToken {
    fn from(row: VcsTokenRow) -> Self {
        Self {
            id: row.id,
            user_id: row.user_id,
            host: row.host,
            label: row.label,
            last_four: row.last_four,
            sealed: SealedSecret {
                ciphertext: row.ciphertext,
                key_id: row.key_id,
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(QueryableByName)]
struct SealedRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    user_id: Uuid,
    #[diesel(sql_type = Bytea)]
    ciphertext: Vec<u8>,
    #[diesel(sql_type = Text)]
    key_id: String,
}

#[async_trait]
impl KeyRepo for DieselPgStore {
    async fn put_provider_key(&self, key: &NewProviderKey) -> StoreResult<ProviderKey> {
        const ACTION: &str = "storing provider key";
        validate_name("provider", &key.provider)?;
        validate_last_four(&key.last_four)?;
        validate_sealed(&key.sealed)?;
        validate_settings(&key.settings)?;
        let at = now();
        let mut conn = self.conn(ACTION).await?;
        // Replacing keeps the row's id and created_at: the upsert only rewrites the rest.
        let row = diesel::insert_into(provider_keys::table)
            .values((
                provider_keys::id.eq(Uuid::now_v7()),
                provider_keys::user_id.eq(key.user_id),
                provider_keys::provider.eq(&key.provider),
                provider_keys::label.eq(&key.label),
                provider_keys::last_four.eq(&key.last_four),
                provider_keys::preferred_model.eq(&key.preferred_model),
                provider_keys::settings.eq(&key.settings),
                provider_keys::ciphertext.eq(&key.sealed.ciphertext),
                provider_keys::key_id.eq(&key.sealed.key_id),
                provider_keys::created_at.eq(at),
                provider_keys::updated_at.eq(at),
            ))
            .on_conflict((provider_keys::user_id, provider_keys::provider))
            .do_update()
            .set((
                provider_keys::label.eq(excluded(provider_keys::label)),
                provider_keys::last_four.eq(excluded(provider_keys::last_four)),
                provider_keys::preferred_model.eq(excluded(provider_keys::preferred_model)),
                provider_keys::settings.eq(excluded(provider_keys::settings)),
                provider_keys::ciphertext.eq(excluded(provider_keys::ciphertext)),
                provider_keys::key_id.eq(excluded(provider_keys::key_id)),
                provider_keys::updated_at.eq(excluded(provider_keys::updated_at)),
            ))
            .returning(ProviderKeyRow::as_returning())
            .get_result(&mut conn)
            .await
            .map_err(db("provider key", ACTION))?;
        Ok(row.into())
    }

    async fn provider_key(
        &self,
        user_id: Uuid,
        provider: &str,
    ) -> StoreResult<Option<ProviderKey>> {
        const ACTION: &str = "loading provider key";
        let mut conn = self.conn(ACTION).await?;
        Ok(provider_keys::table
            .filter(provider_keys::user_id.eq(user_id))
            .filter(provider_keys::provider.eq(provider))
            .select(ProviderKeyRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db("provider key", ACTION))?
            .map(ProviderKey::from))
    }

    async fn list_provider_keys(&self, user_id: Uuid) -> StoreResult<Vec<ProviderKey>> {
        const ACTION: &str = "listing provider keys";
        let mut conn = self.conn(ACTION).await?;
        let mut keys: Vec<ProviderKey> = provider_keys::table
            .filter(provider_keys::user_id.eq(user_id))
            .select(ProviderKeyRow::as_select())
            .load(&mut conn)
            .await
            .map_err(db("provider key", ACTION))?
            .into_iter()
            .map(ProviderKey::from)
            .collect();
        sort_by_text(&mut keys, |k| &k.provider);
        Ok(keys)
    }

    async fn update_provider_settings(
        &self,
        user_id: Uuid,
        provider: &str,
        preferred_model: Option<&str>,
        settings: &Value,
    ) -> StoreResult<ProviderKey> {
        const ACTION: &str = "updating provider settings";
        validate_settings(settings)?;
        let mut conn = self.conn(ACTION).await?;
        diesel::update(
            provider_keys::table
                .filter(provider_keys::user_id.eq(user_id))
                .filter(provider_keys::provider.eq(provider)),
        )
        .set((
            provider_keys::preferred_model.eq(preferred_model),
            provider_keys::settings.eq(settings),
            provider_keys::updated_at.eq(now()),
        ))
        .returning(ProviderKeyRow::as_returning())
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(db("provider key", ACTION))?
        .map(ProviderKey::from)
        .ok_or_else(|| StoreError::not_found("provider key", provider))
    }

    async fn delete_provider_key(&self, user_id: Uuid, provider: &str) -> StoreResult<()> {
        const ACTION: &str = "deleting provider key";
        let mut conn = self.conn(ACTION).await?;
        let rows = diesel::delete(
            provider_keys::table
                .filter(provider_keys::user_id.eq(user_id))
                .filter(provider_keys::provider.eq(provider)),
        )
        .execute(&mut conn)
        .await
        .map_err(db("provider key", ACTION))?;
        touched(rows, "provider key", provider)
    }

    async fn put_vcs_token(&self, token: &NewVcsToken) -> StoreResult<VcsToken> {
        const ACTION: &str = "storing VCS token";
        validate_name("host", &token.host)?;
        validate_last_four(&token.last_four)?;
        validate_sealed(&token.sealed)?;
        let at = now();
        let mut conn = self.conn(ACTION).await?;
        let row = diesel::insert_into(vcs_tokens::table)
            .values((
                vcs_tokens::id.eq(Uuid::now_v7()),
                vcs_tokens::user_id.eq(token.user_id),
                vcs_tokens::host.eq(&token.host),
                vcs_tokens::label.eq(&token.label),
                vcs_tokens::last_four.eq(&token.last_four),
                vcs_tokens::ciphertext.eq(&token.sealed.ciphertext),
                vcs_tokens::key_id.eq(&token.sealed.key_id),
                vcs_tokens::created_at.eq(at),
                vcs_tokens::updated_at.eq(at),
            ))
            .on_conflict((vcs_tokens::user_id, vcs_tokens::host))
            .do_update()
            .set((
                vcs_tokens::label.eq(excluded(vcs_tokens::label)),
                vcs_tokens::last_four.eq(excluded(vcs_tokens::last_four)),
                vcs_tokens::ciphertext.eq(excluded(vcs_tokens::ciphertext)),
                vcs_tokens::key_id.eq(excluded(vcs_tokens::key_id)),
                vcs_tokens::updated_at.eq(excluded(vcs_tokens::updated_at)),
            ))
            .returning(VcsTokenRow::as_returning())
            .get_result(&mut conn)
            .await
            .map_err(db("vcs token", ACTION))?;
        Ok(row.into())
    }

    async fn vcs_token(&self, user_id: Uuid, host: &str) -> StoreResult<Option<VcsToken>> {
        const ACTION: &str = "loading VCS token";
        let mut conn = self.conn(ACTION).await?;
        Ok(vcs_tokens::table
            .filter(vcs_tokens::user_id.eq(user_id))
            .filter(vcs_tokens::host.eq(host))
            .select(VcsTokenRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db("vcs token", ACTION))?
            .map(VcsToken::from))
    }

    async fn list_vcs_tokens(&self, user_id: Uuid) -> StoreResult<Vec<VcsToken>> {
        const ACTION: &str = "listing VCS tokens";
        let mut conn = self.conn(ACTION).await?;
        let mut tokens: Vec<VcsToken> = vcs_tokens::table
            .filter(vcs_tokens::user_id.eq(user_id))
            .select(VcsTokenRow::as_select())
            .load(&mut conn)
            .await
            .map_err(db("vcs token", ACTION))?
            .into_iter()
            .map(VcsToken::from)
            .collect();
        sort_by_text(&mut tokens, |t| &t.host);
        Ok(tokens)
    }

    async fn delete_vcs_token(&self, user_id: Uuid, host: &str) -> StoreResult<()> {
        const ACTION: &str = "deleting VCS token";
        let mut conn = self.conn(ACTION).await?;
        let rows = diesel::delete(
            vcs_tokens::table
                .filter(vcs_tokens::user_id.eq(user_id))
                .filter(vcs_tokens::host.eq(host)),
        )
        .execute(&mut conn)
        .await
        .map_err(db("vcs token", ACTION))?;
        touched(rows, "vcs token", host)
    }

    async fn list_sealed(&self, except_key_id: Option<&str>) -> StoreResult<Vec<SealedEntry>> {
        const ACTION: &str = "listing sealed secrets";
        let mut conn = self.conn(ACTION).await?;
        // One statement, so the work list is one snapshot of both tables. The two kinds differ
        // in their first letter, so every collation orders them alike; UUIDs compare bytewise
        // in PostgreSQL, as in SQLite.
        let rows: Vec<SealedRow> = diesel::sql_query(
            "SELECT 'provider_key' AS kind, id, user_id, ciphertext, key_id FROM provider_keys
             WHERE $1::text IS NULL OR key_id <> $1
             UNION ALL
             SELECT 'vcs_token' AS kind, id, user_id, ciphertext, key_id FROM vcs_tokens
             WHERE $1::text IS NULL OR key_id <> $1
             ORDER BY kind, id",
        )
        .bind::<Nullable<Text>, _>(except_key_id)
        .load(&mut conn)
        .await
        .map_err(db("sealed secret", ACTION))?;
        rows.into_iter()
            .map(|row| {
                Ok(SealedEntry {
                    kind: row.kind.parse()?,
                    id: row.id,
                    user_id: row.user_id,
                    sealed: SealedSecret {
                        ciphertext: row.ciphertext,
                        key_id: row.key_id,
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
        const ACTION: &str = "re-sealing secret";
        validate_sealed(replacement)?;
        let at = now();
        let mut conn = self.conn(ACTION).await?;
        // Compare-and-swap on the sealed value: a key the user replaced meanwhile no longer
        // matches `expected` and is left alone.
        let rows = match kind {
            SecretKind::ProviderKey => {
                diesel::update(
                    provider_keys::table
                        .find(id)
                        .filter(provider_keys::ciphertext.eq(&expected.ciphertext))
                        .filter(provider_keys::key_id.eq(&expected.key_id)),
                )
                .set((
                    provider_keys::ciphertext.eq(&replacement.ciphertext),
                    provider_keys::key_id.eq(&replacement.key_id),
                    provider_keys::updated_at.eq(at),
                ))
                .execute(&mut conn)
                .await
            }
            SecretKind::VcsToken => {
                diesel::update(
                    vcs_tokens::table
                        .find(id)
                        .filter(vcs_tokens::ciphertext.eq(&expected.ciphertext))
                        .filter(vcs_tokens::key_id.eq(&expected.key_id)),
                )
                .set((
                    vcs_tokens::ciphertext.eq(&replacement.ciphertext),
                    vcs_tokens::key_id.eq(&replacement.key_id),
                    vcs_tokens::updated_at.eq(at),
                ))
                .execute(&mut conn)
                .await
            }
        }
        .map_err(db("sealed secret", ACTION))?;
        Ok(rows == 1)
    }
}

#[derive(QueryableByName)]
struct UsedRow {
    #[diesel(sql_type = Int8)]
    used: i64,
}

#[async_trait]
impl QuotaRepo for DieselPgStore {
    async fn try_consume(
        &self,
        user_id: Uuid,
        kind: QuotaKind,
        period_start: NaiveDate,
        limit: i64,
    ) -> StoreResult<QuotaDecision> {
        const ACTION: &str = "consuming quota";
        let mut conn = self.conn(ACTION).await?;
        if limit >= 1 {
            // The conditional upsert is the increment-and-check: PostgreSQL locks the counter
            // row and re-checks `used < limit` on its latest version, so concurrent calls never
            // push it past the limit; a first row starts at 1, which is fine since limit >= 1.
            let counted: Option<UsedRow> = diesel::sql_query(
                "INSERT INTO quota_counters (user_id, kind, period_start, used)
                 VALUES ($1, $2, $3, 1)
                 ON CONFLICT (user_id, kind, period_start)
                 DO UPDATE SET used = quota_counters.used + 1 WHERE quota_counters.used < $4
                 RETURNING used",
            )
            .bind::<diesel::sql_types::Uuid, _>(user_id)
            .bind::<Text, _>(kind.as_str())
            .bind::<Date, _>(period_start)
            .bind::<Int8, _>(limit)
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(db("quota counter", ACTION))?;
            if let Some(row) = counted {
                return Ok(QuotaDecision {
                    allowed: true,
                    used: row.used,
                    limit,
                });
            }
        }
        let used = quota_counters::table
            .find((user_id, kind.as_str(), period_start))
            .select(quota_counters::used)
            .first::<i64>(&mut conn)
            .await
            .optional()
            .map_err(db("quota counter", ACTION))?;
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
        const ACTION: &str = "reading quota counter";
        let mut conn = self.conn(ACTION).await?;
        let used = quota_counters::table
            .find((user_id, kind.as_str(), period_start))
            .select(quota_counters::used)
            .first::<i64>(&mut conn)
            .await
            .optional()
            .map_err(db("quota counter", ACTION))?;
        Ok(used.unwrap_or(0))
    }
}
