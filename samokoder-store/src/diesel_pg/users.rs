//! Users, sessions and the `samokoder-auth` ports.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::{exists, not};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Int8, Text, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};
use samokoder_auth::ports::{
    FailedLogin, LoginAttemptStore, PortResult, RefreshFamily, RefreshFamilyStore, RevocationStore,
    TokenRef,
};
use uuid::Uuid;

use super::errors::{TxError, db};
use super::schema::{login_attempts, refresh_families, revoked_tokens, users};
use super::{DieselPgStore, touched};
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use crate::repo::{SessionRepo, UserRepo};

#[derive(Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
struct UserRow {
    id: Uuid,
    email: String,
    password_hash: String,
    tier: String,
    is_admin: bool,
    tokens_revoked_before: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> StoreResult<Self> {
        Ok(Self {
            id: row.id,
            email: row.email,
            password_hash: row.password_hash,
            tier: row.tier.parse()?,
            is_admin: row.is_admin,
            tokens_revoked_before: row.tokens_revoked_before,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[async_trait]
impl UserRepo for DieselPgStore {
    async fn create(&self, user: &NewUser) -> StoreResult<User> {
        const ACTION: &str = "creating user";
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
        let mut conn = self.conn(ACTION).await?;
        diesel::insert_into(users::table)
            .values((
                users::id.eq(created.id),
                users::email.eq(&created.email),
                users::email_key.eq(email_key(email)),
                users::password_hash.eq(&created.password_hash),
                users::tier.eq(created.tier.as_str()),
                users::is_admin.eq(created.is_admin),
                users::created_at.eq(at),
                users::updated_at.eq(at),
            ))
            .execute(&mut conn)
            .await
            .map_err(|e| match db("user", ACTION)(e) {
                // The only unique key besides the fresh id is the e-mail key.
                StoreError::Conflict { .. } => {
                    StoreError::conflict("user", "an account with this e-mail already exists")
                }
                other => other,
            })?;
        Ok(created)
    }

    async fn get(&self, id: Uuid) -> StoreResult<User> {
        const ACTION: &str = "loading user";
        let mut conn = self.conn(ACTION).await?;
        users::table
            .find(id)
            .select(UserRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db("user", ACTION))?
            .ok_or_else(|| StoreError::not_found("user", id))?
            .try_into()
    }

    async fn find_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        const ACTION: &str = "finding user by e-mail";
        let mut conn = self.conn(ACTION).await?;
        users::table
            .filter(users::email_key.eq(email_key(email)))
            .select(UserRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db("user", ACTION))?
            .map(User::try_from)
            .transpose()
    }

    async fn set_password_hash(&self, id: Uuid, password_hash: &str) -> StoreResult<()> {
        const ACTION: &str = "changing password";
        if password_hash.is_empty() {
            return Err(StoreError::invalid("password hash must not be empty"));
        }
        let mut conn = self.conn(ACTION).await?;
        let rows = diesel::update(users::table.find(id))
            .set((
                users::password_hash.eq(password_hash),
                users::updated_at.eq(now()),
            ))
            .execute(&mut conn)
            .await
            .map_err(db("user", ACTION))?;
        touched(rows, "user", id)
    }

    async fn set_tier(&self, id: Uuid, tier: Tier) -> StoreResult<()> {
        const ACTION: &str = "changing tier";
        let mut conn = self.conn(ACTION).await?;
        let rows = diesel::update(users::table.find(id))
            .set((users::tier.eq(tier.as_str()), users::updated_at.eq(now())))
            .execute(&mut conn)
            .await
            .map_err(db("user", ACTION))?;
        touched(rows, "user", id)
    }

    async fn set_admin(&self, id: Uuid, is_admin: bool) -> StoreResult<()> {
        const ACTION: &str = "changing admin flag";
        let mut conn = self.conn(ACTION).await?;
        let rows = diesel::update(users::table.find(id))
            .set((users::is_admin.eq(is_admin), users::updated_at.eq(now())))
            .execute(&mut conn)
            .await
            .map_err(db("user", ACTION))?;
        touched(rows, "user", id)
    }

    async fn list(&self, offset: u64, limit: u32) -> StoreResult<Vec<User>> {
        const ACTION: &str = "listing users";
        let limit = validate_limit(limit)?;
        let offset = i64::try_from(offset).map_err(|_| StoreError::invalid("offset too large"))?;
        let mut conn = self.conn(ACTION).await?;
        users::table
            .select(UserRow::as_select())
            .order((users::created_at, users::id))
            .limit(limit)
            .offset(offset)
            .load(&mut conn)
            .await
            .map_err(db("user", ACTION))?
            .into_iter()
            .map(User::try_from)
            .collect()
    }

    async fn count(&self) -> StoreResult<u64> {
        const ACTION: &str = "counting users";
        let mut conn = self.conn(ACTION).await?;
        let count: i64 = users::table
            .count()
            .get_result(&mut conn)
            .await
            .map_err(db("user", ACTION))?;
        Ok(count.unsigned_abs())
    }

    async fn delete(&self, id: Uuid) -> StoreResult<()> {
        const ACTION: &str = "deleting user";
        let mut conn = self.conn(ACTION).await?;
        // Everything the user owns goes with the row (ON DELETE CASCADE in the schema).
        let rows = diesel::delete(users::table.find(id))
            .execute(&mut conn)
            .await
            .map_err(db("user", ACTION))?;
        touched(rows, "user", id)
    }
}

#[async_trait]
impl SessionRepo for DieselPgStore {
    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<SessionPurge> {
        const ACTION: &str = "purging expired sessions";
        let mut conn = self.conn(ACTION).await?;
        let purge = conn
            .transaction::<_, TxError, _>(async |conn| {
                let revoked_tokens = diesel::delete(
                    revoked_tokens::table.filter(revoked_tokens::expires_at.lt(now)),
                )
                .execute(conn)
                .await
                .map_err(db("revoked token", ACTION))?;
                let refresh_families = diesel::delete(
                    refresh_families::table.filter(refresh_families::expires_at.lt(now)),
                )
                .execute(conn)
                .await
                .map_err(db("refresh family", ACTION))?;
                Ok(SessionPurge {
                    revoked_tokens: revoked_tokens as u64,
                    refresh_families: refresh_families as u64,
                })
            })
            .await?;
        Ok(purge)
    }

    async fn purge_login_attempts(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        const ACTION: &str = "purging login attempts";
        let mut conn = self.conn(ACTION).await?;
        let rows = diesel::delete(login_attempts::table.filter(login_attempts::at.lt(before)))
            .execute(&mut conn)
            .await
            .map_err(db("login attempt", ACTION))?;
        Ok(rows as u64)
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = refresh_families, check_for_backend(diesel::pg::Pg))]
struct FamilyRow {
    family_id: Uuid,
    user_id: Uuid,
    current_jti: Uuid,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<FamilyRow> for RefreshFamily {
    fn from(row: FamilyRow) -> Self {
        Self {
            family_id: row.family_id,
            user_id: row.user_id,
            current_jti: row.current_jti,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

#[async_trait]
impl RefreshFamilyStore for DieselPgStore {
    async fn create_family(&self, family: &RefreshFamily) -> PortResult<()> {
        const ACTION: &str = "creating refresh family";
        let at = now();
        let mut conn = self.conn(ACTION).await?;
        diesel::insert_into(refresh_families::table)
            .values((
                refresh_families::family_id.eq(family.family_id),
                refresh_families::user_id.eq(family.user_id),
                refresh_families::current_jti.eq(family.current_jti),
                refresh_families::expires_at.eq(truncate_micros(family.expires_at)),
                refresh_families::revoked_at.eq(family.revoked_at.map(truncate_micros)),
                refresh_families::created_at.eq(at),
                refresh_families::updated_at.eq(at),
            ))
            .execute(&mut conn)
            .await
            .map_err(db("refresh family", ACTION))?;
        Ok(())
    }

    async fn family(&self, family_id: Uuid) -> PortResult<Option<RefreshFamily>> {
        const ACTION: &str = "loading refresh family";
        let mut conn = self.conn(ACTION).await?;
        let row = refresh_families::table
            .find(family_id)
            .select(FamilyRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db("refresh family", ACTION))?;
        Ok(row.map(RefreshFamily::from))
    }

    async fn rotate(
        &self,
        family_id: Uuid,
        expected_jti: Uuid,
        next_jti: Uuid,
        next_expires_at: DateTime<Utc>,
    ) -> PortResult<bool> {
        const ACTION: &str = "rotating refresh token";
        let mut conn = self.conn(ACTION).await?;
        // One conditional UPDATE is the compare-and-swap: PostgreSQL locks the row, so of two
        // concurrent rotations the second re-checks the condition against the first's result
        // and no longer matches `expected_jti`.
        let rows = diesel::update(
            refresh_families::table
                .find(family_id)
                .filter(refresh_families::current_jti.eq(expected_jti))
                .filter(refresh_families::revoked_at.is_null()),
        )
        .set((
            refresh_families::current_jti.eq(next_jti),
            refresh_families::expires_at.eq(truncate_micros(next_expires_at)),
            refresh_families::updated_at.eq(now()),
        ))
        .execute(&mut conn)
        .await
        .map_err(db("refresh family", ACTION))?;
        Ok(rows == 1)
    }

    async fn revoke_family(&self, family_id: Uuid, at: DateTime<Utc>) -> PortResult<()> {
        const ACTION: &str = "revoking refresh family";
        let mut conn = self.conn(ACTION).await?;
        // Only a live family is touched: revoking twice is not an error and keeps the first
        // revocation time.
        diesel::update(
            refresh_families::table
                .find(family_id)
                .filter(refresh_families::revoked_at.is_null()),
        )
        .set((
            refresh_families::revoked_at.eq(truncate_micros(at)),
            refresh_families::updated_at.eq(now()),
        ))
        .execute(&mut conn)
        .await
        .map_err(db("refresh family", ACTION))?;
        Ok(())
    }

    async fn revoke_user_families(&self, user_id: Uuid, at: DateTime<Utc>) -> PortResult<u64> {
        const ACTION: &str = "revoking a user's refresh families";
        let mut conn = self.conn(ACTION).await?;
        let rows = diesel::update(
            refresh_families::table
                .filter(refresh_families::user_id.eq(user_id))
                .filter(refresh_families::revoked_at.is_null()),
        )
        .set((
            refresh_families::revoked_at.eq(truncate_micros(at)),
            refresh_families::updated_at.eq(now()),
        ))
        .execute(&mut conn)
        .await
        .map_err(db("refresh family", ACTION))?;
        Ok(rows as u64)
    }
}

#[async_trait]
impl RevocationStore for DieselPgStore {
    async fn revoke_token(&self, jti: Uuid, expires_at: DateTime<Utc>) -> PortResult<bool> {
        const ACTION: &str = "revoking token";
        let mut conn = self.conn(ACTION).await?;
        // Revoking twice keeps the later expiry, so the row lives as long as the token could.
        // `xmax = 0` holds for a row this statement inserted, not for one it updated: of two
        // concurrent upserts, the second waits for the first and then updates.
        let row: Inserted = diesel::sql_query(
            "INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES ($1, $2, $3)
             ON CONFLICT (jti) DO UPDATE
             SET expires_at = GREATEST(revoked_tokens.expires_at, excluded.expires_at)
             RETURNING (xmax = 0) AS inserted",
        )
        .bind::<diesel::sql_types::Uuid, _>(jti)
        .bind::<Timestamptz, _>(truncate_micros(expires_at))
        .bind::<Timestamptz, _>(now())
        .get_result(&mut conn)
        .await
        .map_err(db("revoked token", ACTION))?;
        Ok(row.inserted)
    }

    async fn revoke_user_tokens_before(&self, user_id: Uuid, at: DateTime<Utc>) -> PortResult<()> {
        const ACTION: &str = "revoking a user's tokens";
        let mut conn = self.conn(ACTION).await?;
        // The mark only moves forward (GREATEST ignores the NULL of a user never marked): an
        // older "log out everywhere" must not un-revoke what a newer one revoked. An unknown user
        // has no tokens to revoke, and `is_revoked` treats their tokens as revoked anyway.
        diesel::sql_query(
            "UPDATE users SET tokens_revoked_before = GREATEST(tokens_revoked_before, $2),
                              updated_at = $3
             WHERE id = $1",
        )
        .bind::<diesel::sql_types::Uuid, _>(user_id)
        .bind::<Timestamptz, _>(truncate_micros(at))
        .bind::<Timestamptz, _>(now())
        .execute(&mut conn)
        .await
        .map_err(db("user", ACTION))?;
        Ok(())
    }

    async fn is_revoked(&self, token: &TokenRef) -> PortResult<bool> {
        const ACTION: &str = "checking token revocation";
        let issued_at = truncate_micros(token.issued_at);
        let mut conn = self.conn(ACTION).await?;
        // Fails closed: a token whose user no longer exists counts as revoked.
        let live_user = users::table.filter(users::id.eq(token.user_id)).filter(
            users::tokens_revoked_before
                .is_null()
                .or(users::tokens_revoked_before.lt(issued_at)),
        );
        let revoked = diesel::select(
            exists(revoked_tokens::table.find(token.jti)).or(not(exists(live_user))),
        )
        .get_result::<bool>(&mut conn)
        .await
        .map_err(db("revoked token", ACTION))?;
        Ok(revoked)
    }
}

/// Whether an upsert inserted its row.
#[derive(QueryableByName)]
struct Inserted {
    #[diesel(sql_type = Bool)]
    inserted: bool,
}

#[derive(QueryableByName)]
struct FailureRow {
    #[diesel(sql_type = Timestamptz)]
    at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    client: String,
}

#[async_trait]
impl LoginAttemptStore for DieselPgStore {
    async fn record_attempt(
        &self,
        account: &str,
        client: &str,
        succeeded: bool,
        at: DateTime<Utc>,
    ) -> PortResult<()> {
        const ACTION: &str = "recording login attempt";
        let mut conn = self.conn(ACTION).await?;
        diesel::insert_into(login_attempts::table)
            .values((
                login_attempts::account.eq(account),
                login_attempts::client.eq(client),
                login_attempts::succeeded.eq(succeeded),
                login_attempts::at.eq(truncate_micros(at)),
            ))
            .execute(&mut conn)
            .await
            .map_err(db("login attempt", ACTION))?;
        Ok(())
    }

    async fn recent_failures(
        &self,
        account: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> PortResult<Vec<FailedLogin>> {
        const ACTION: &str = "reading recent login failures";
        let mut conn = self.conn(ACTION).await?;
        // "Later" is by time, and by insertion order (the identity column) between attempts
        // recorded at the same microsecond.
        let rows: Vec<FailureRow> = diesel::sql_query(
            "SELECT f.at, f.client FROM login_attempts f
             WHERE f.account = $1 AND NOT f.succeeded AND f.at >= $2
               AND NOT EXISTS (
                   SELECT 1 FROM login_attempts s
                   WHERE s.account = f.account AND s.client = f.client AND s.succeeded
                     AND (s.at > f.at OR (s.at = f.at AND s.id > f.id)))
             ORDER BY f.at DESC, f.id DESC
             LIMIT $3",
        )
        .bind::<Text, _>(account)
        .bind::<Timestamptz, _>(truncate_micros(since))
        .bind::<Int8, _>(i64::from(limit))
        .load(&mut conn)
        .await
        .map_err(db("login attempt", ACTION))?;
        Ok(rows
            .into_iter()
            .map(|row| FailedLogin {
                at: row.at,
                client: row.client,
            })
            .collect())
    }
}
