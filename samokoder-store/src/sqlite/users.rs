//! Users, sessions and the `samokoder-auth` ports on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use samokoder_auth::ports::{
    FailedLogin, LoginAttemptStore, PortResult, RefreshFamily, RefreshFamilyStore, RevocationStore,
    TokenRef,
};
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::{RowExt, SqliteStore, err, ts, ts_opt};
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use crate::repo::{SessionRepo, UserRepo};

macro_rules! user_columns {
    () => {
        "id, email, password_hash, tier, is_admin, tokens_revoked_before, created_at, updated_at"
    };
}

fn user_from_row(row: &SqliteRow) -> StoreResult<User> {
    Ok(User {
        id: row.col("id")?,
        email: row.col("email")?,
        password_hash: row.col("password_hash")?,
        tier: row.parsed("tier")?,
        is_admin: row.col("is_admin")?,
        tokens_revoked_before: row.time_opt("tokens_revoked_before")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

impl SqliteStore {
    /// Runs an `UPDATE users ... WHERE id = $1`-shaped statement and turns "no row" into
    /// NotFound.
    async fn update_user(
        &self,
        id: Uuid,
        action: &'static str,
        query: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> StoreResult<()> {
        let done = query
            .execute(&self.writer)
            .await
            .map_err(err("user", action))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("user", id));
        }
        Ok(())
    }
}

#[async_trait]
impl UserRepo for SqliteStore {
    async fn create(&self, user: &NewUser) -> StoreResult<User> {
        let email = validate_email(&user.email)?;
        if user.password_hash.is_empty() {
            return Err(StoreError::invalid("password hash must not be empty"));
        }
        let at = now();
        let created = User {
            id: Uuid::now_v7(),
            email: email.to_owned(),
            password_hash: user.password_hash.clone(),
            tier: user.tier,
            is_admin: user.is_admin,
            tokens_revoked_before: None,
            created_at: at,
            updated_at: at,
        };
        sqlx::query(
            "INSERT INTO users (id, email, email_key, password_hash, tier, is_admin, created_at,
                                updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(created.id)
        .bind(&created.email)
        .bind(email_key(email))
        .bind(&created.password_hash)
        .bind(created.tier.as_str())
        .bind(created.is_admin)
        .bind(ts(at))
        .execute(&self.writer)
        .await
        .map_err(|e| match err("user", "creating user")(e) {
            StoreError::Conflict { .. } => {
                StoreError::conflict("user", "an account with this e-mail already exists")
            }
            other => other,
        })?;
        Ok(created)
    }

    async fn get(&self, id: Uuid) -> StoreResult<User> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(err("user", "loading user"))?
        .map(|row| user_from_row(&row))
        .transpose()?
        .ok_or_else(|| StoreError::not_found("user", id))
    }

    async fn find_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE email_key = $1"
        ))
        .bind(email_key(email))
        .fetch_optional(&self.reader)
        .await
        .map_err(err("user", "finding user by e-mail"))?
        .map(|row| user_from_row(&row))
        .transpose()
    }

    async fn set_password_hash(&self, id: Uuid, password_hash: &str) -> StoreResult<()> {
        if password_hash.is_empty() {
            return Err(StoreError::invalid("password hash must not be empty"));
        }
        let query =
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(password_hash.to_owned())
                .bind(ts(now()));
        self.update_user(id, "changing password", query).await
    }

    async fn set_tier(&self, id: Uuid, tier: Tier) -> StoreResult<()> {
        let query = sqlx::query("UPDATE users SET tier = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(tier.as_str())
            .bind(ts(now()));
        self.update_user(id, "changing tier", query).await
    }

    async fn set_admin(&self, id: Uuid, is_admin: bool) -> StoreResult<()> {
        let query = sqlx::query("UPDATE users SET is_admin = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(is_admin)
            .bind(ts(now()));
        self.update_user(id, "changing admin flag", query).await
    }

    async fn list(&self, offset: u64, limit: u32) -> StoreResult<Vec<User>> {
        let limit = validate_limit(limit)?;
        let offset = i64::try_from(offset).map_err(|_| StoreError::invalid("offset too large"))?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2"
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.reader)
        .await
        .map_err(err("user", "listing users"))?;
        rows.iter().map(user_from_row).collect()
    }

    async fn count(&self) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.reader)
            .await
            .map_err(err("user", "counting users"))?;
        Ok(count.unsigned_abs())
    }

    async fn delete(&self, id: Uuid) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(err("user", "deleting user"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("user", id));
        }
        Ok(())
    }
}

#[async_trait]
impl SessionRepo for SqliteStore {
    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<SessionPurge> {
        const ACTION: &str = "purging expired sessions";
        let mut tx = self.begin_write(ACTION).await?;
        let revoked_tokens = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .map_err(err("revoked token", ACTION))?
            .rows_affected();
        let refresh_families = sqlx::query("DELETE FROM refresh_families WHERE expires_at < $1")
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .map_err(err("refresh family", ACTION))?
            .rows_affected();
        super::commit(tx, ACTION).await?;
        Ok(SessionPurge {
            revoked_tokens,
            refresh_families,
        })
    }

    async fn purge_login_attempts(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM login_attempts WHERE at < $1")
            .bind(ts(before))
            .execute(&self.writer)
            .await
            .map_err(err("login attempt", "purging login attempts"))?
            .rows_affected())
    }
}

fn family_from_row(row: &SqliteRow) -> StoreResult<RefreshFamily> {
    Ok(RefreshFamily {
        family_id: row.col("family_id")?,
        user_id: row.col("user_id")?,
        current_jti: row.col("current_jti")?,
        expires_at: row.time("expires_at")?,
        revoked_at: row.time_opt("revoked_at")?,
    })
}

#[async_trait]
impl RefreshFamilyStore for SqliteStore {
    async fn create_family(&self, family: &RefreshFamily) -> PortResult<()> {
        let at = now();
        sqlx::query(
            "INSERT INTO refresh_families (family_id, user_id, current_jti, expires_at,
                                           revoked_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(family.family_id)
        .bind(family.user_id)
        .bind(family.current_jti)
        .bind(ts(truncate_micros(family.expires_at)))
        .bind(ts_opt(family.revoked_at.map(truncate_micros)))
        .bind(ts(at))
        .execute(&self.writer)
        .await
        .map_err(err("refresh family", "creating refresh family"))?;
        Ok(())
    }

    async fn family(&self, family_id: Uuid) -> PortResult<Option<RefreshFamily>> {
        let row = sqlx::query(
            "SELECT family_id, user_id, current_jti, expires_at, revoked_at
             FROM refresh_families WHERE family_id = $1",
        )
        .bind(family_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(err("refresh family", "loading refresh family"))?;
        Ok(row.map(|row| family_from_row(&row)).transpose()?)
    }

    async fn rotate(
        &self,
        family_id: Uuid,
        expected_jti: Uuid,
        next_jti: Uuid,
        next_expires_at: DateTime<Utc>,
    ) -> PortResult<bool> {
        // One conditional UPDATE is the compare-and-swap: the single writer applies concurrent
        // rotations one after the other, and only the first still matches `expected_jti`.
        let done = sqlx::query(
            "UPDATE refresh_families
             SET current_jti = $3, expires_at = $4, updated_at = $5
             WHERE family_id = $1 AND current_jti = $2 AND revoked_at IS NULL",
        )
        .bind(family_id)
        .bind(expected_jti)
        .bind(next_jti)
        .bind(ts(truncate_micros(next_expires_at)))
        .bind(ts(now()))
        .execute(&self.writer)
        .await
        .map_err(err("refresh family", "rotating refresh token"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_family(&self, family_id: Uuid, at: DateTime<Utc>) -> PortResult<()> {
        // COALESCE keeps the first revocation time: revoking twice is not an error and does not
        // rewrite history.
        sqlx::query(
            "UPDATE refresh_families
             SET revoked_at = COALESCE(revoked_at, $2), updated_at = $3
             WHERE family_id = $1",
        )
        .bind(family_id)
        .bind(ts(truncate_micros(at)))
        .bind(ts(now()))
        .execute(&self.writer)
        .await
        .map_err(err("refresh family", "revoking refresh family"))?;
        Ok(())
    }

    async fn revoke_user_families(&self, user_id: Uuid, at: DateTime<Utc>) -> PortResult<u64> {
        let done = sqlx::query(
            "UPDATE refresh_families SET revoked_at = $2, updated_at = $3
             WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(ts(truncate_micros(at)))
        .bind(ts(now()))
        .execute(&self.writer)
        .await
        .map_err(err("refresh family", "revoking a user's refresh families"))?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl RevocationStore for SqliteStore {
    async fn revoke_token(&self, jti: Uuid, expires_at: DateTime<Utc>) -> PortResult<bool> {
        const ACTION: &str = "revoking token";
        // The write transaction holds the database's write lock from its first statement, so
        // the look and the upsert are one step for every other writer.
        let mut tx = self.begin_write(ACTION).await?;
        let known = sqlx::query("SELECT 1 FROM revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err("revoked token", ACTION))?
            .is_some();
        // Revoking twice keeps the later expiry, so the row lives as long as the token could.
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES ($1, $2, $3)
             ON CONFLICT (jti) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)",
        )
        .bind(jti)
        .bind(ts(truncate_micros(expires_at)))
        .bind(ts(now()))
        .execute(&mut *tx)
        .await
        .map_err(err("revoked token", ACTION))?;
        super::commit(tx, ACTION).await?;
        Ok(!known)
    }

    async fn revoke_user_tokens_before(&self, user_id: Uuid, at: DateTime<Utc>) -> PortResult<()> {
        // The mark only moves forward: an older "log out everywhere" must not un-revoke tokens
        // a newer one revoked. An unknown user has no tokens to revoke (and `is_revoked` treats
        // their tokens as revoked anyway).
        sqlx::query(
            "UPDATE users
             SET tokens_revoked_before = MAX(COALESCE(tokens_revoked_before, $2), $2),
                 updated_at = $3
             WHERE id = $1",
        )
        .bind(user_id)
        .bind(ts(truncate_micros(at)))
        .bind(ts(now()))
        .execute(&self.writer)
        .await
        .map_err(err("user", "revoking a user's tokens"))?;
        Ok(())
    }

    async fn is_revoked(&self, token: &TokenRef) -> PortResult<bool> {
        // Fails closed: a token whose user no longer exists counts as revoked.
        let revoked: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1)
                 OR NOT EXISTS (
                        SELECT 1 FROM users WHERE id = $2
                        AND (tokens_revoked_before IS NULL OR tokens_revoked_before < $3))",
        )
        .bind(token.jti)
        .bind(token.user_id)
        .bind(ts(truncate_micros(token.issued_at)))
        .fetch_one(&self.reader)
        .await
        .map_err(err("revoked token", "checking token revocation"))?;
        Ok(revoked)
    }
}

#[async_trait]
impl LoginAttemptStore for SqliteStore {
    async fn record_attempt(
        &self,
        account: &str,
        client: &str,
        succeeded: bool,
        at: DateTime<Utc>,
    ) -> PortResult<()> {
        sqlx::query(
            "INSERT INTO login_attempts (account, client, succeeded, at) VALUES ($1, $2, $3, $4)",
        )
        .bind(account)
        .bind(client)
        .bind(succeeded)
        .bind(ts(truncate_micros(at)))
        .execute(&self.writer)
        .await
        .map_err(err("login attempt", "recording login attempt"))?;
        Ok(())
    }

    async fn recent_failures(
        &self,
        account: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> PortResult<Vec<FailedLogin>> {
        // "Later" is by time, and by insertion order (the integer id) between attempts recorded
        // at the same microsecond.
        let rows = sqlx::query(
            "SELECT f.at, f.client FROM login_attempts f
             WHERE f.account = $1 AND f.succeeded = 0 AND f.at >= $2
               AND NOT EXISTS (
                   SELECT 1 FROM login_attempts s
                   WHERE s.account = f.account AND s.client = f.client AND s.succeeded = 1
                     AND (s.at > f.at OR (s.at = f.at AND s.id > f.id)))
             ORDER BY f.at DESC, f.id DESC
             LIMIT $3",
        )
        .bind(account)
        .bind(ts(truncate_micros(since)))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(err("login attempt", "reading recent login failures"))?;
        let failures = rows
            .iter()
            .map(|row| {
                Ok(FailedLogin {
                    at: row.time("at")?,
                    client: row.col("client")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(failures)
    }
}
