//! Branches, checkpointed states, their file changes and content-addressed blobs.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::exists;
use diesel::prelude::*;
use diesel::sql_types::{Bytea, Int8, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::errors::{TxError, db};
use super::schema::{blobs, branches, state_files, states};
use super::{DieselPgStore, sort_by_text};
use crate::common::prepare_state;
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use crate::repo::{FileRepo, StateRepo};

/// Rows per multi-row `INSERT`: PostgreSQL takes at most 65535 bind parameters per statement,
/// and a blob row has four.
const INSERT_CHUNK: usize = 1000;

#[derive(Queryable, Selectable, QueryableByName)]
#[diesel(table_name = states, check_for_backend(diesel::pg::Pg))]
struct StateRow {
    id: Uuid,
    project_id: Uuid,
    branch: String,
    parent_id: Option<Uuid>,
    run_id: Option<Uuid>,
    sequence: i64,
    step_label: String,
    state: Value,
    created_at: DateTime<Utc>,
}

impl From<StateRow> for StateRecord {
    fn from(row: StateRow) -> Self {
        Self {
            id: row.id,
            project_id: row.project_id,
            branch: row.branch,
            parent_id: row.parent_id,
            run_id: row.run_id,
            sequence: row.sequence,
            step_label: row.step_label,
            state: row.state,
            created_at: row.created_at,
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = branches, check_for_backend(diesel::pg::Pg))]
struct BranchRow {
    project_id: Uuid,
    name: String,
    head_state_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<BranchRow> for Branch {
    fn from(row: BranchRow) -> Self {
        Self {
            project_id: row.project_id,
            name: row.name,
            head_state_id: row.head_state_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = blobs)]
struct NewBlob<'a> {
    hash: &'a str,
    size: i64,
    content: &'a [u8],
    created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = state_files)]
struct NewStateFile<'a> {
    state_id: Uuid,
    path: &'a str,
    blob_hash: Option<&'a str>,
}

#[derive(QueryableByName)]
struct TreeRow {
    #[diesel(sql_type = Text)]
    path: String,
    #[diesel(sql_type = Text)]
    blob_hash: String,
}

#[derive(QueryableByName)]
struct ContentRow {
    #[diesel(sql_type = Nullable<Bytea>)]
    content: Option<Vec<u8>>,
}

/// The recursive walk from a state (`$1`) to the root of its chain; `depth` 0 is the state.
const CHAIN_CTE: &str = "WITH RECURSIVE chain(id, parent_id, depth) AS (
        SELECT id, parent_id, 0 FROM states WHERE id = $1
        UNION ALL
        SELECT s.id, s.parent_id, c.depth + 1 FROM states s JOIN chain c ON s.id = c.parent_id
    ) ";

/// `NotFound` unless the state exists (so an empty answer means "no rows", not "no state").
async fn state_exists(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    action: &'static str,
) -> StoreResult<()> {
    let exists = diesel::select(exists(states::table.find(id)))
        .get_result::<bool>(conn)
        .await
        .map_err(db("state", action))?;
    if exists {
        Ok(())
    } else {
        Err(StoreError::not_found("state", id))
    }
}

#[async_trait]
impl StateRepo for DieselPgStore {
    async fn create_branch(
        &self,
        project_id: Uuid,
        name: &str,
        from_state: Option<Uuid>,
    ) -> StoreResult<Branch> {
        const ACTION: &str = "creating branch";
        validate_name("branch name", name)?;
        let at = now();
        let mut conn = self.conn(ACTION).await?;
        conn.transaction::<_, TxError, _>(async |conn| {
            if let Some(from) = from_state {
                let owner: Option<Uuid> = states::table
                    .find(from)
                    .select(states::project_id)
                    .first(conn)
                    .await
                    .optional()
                    .map_err(db("branch", ACTION))?;
                if owner != Some(project_id) {
                    return Err(StoreError::not_found("state", from).into());
                }
            }
            diesel::insert_into(branches::table)
                .values((
                    branches::project_id.eq(project_id),
                    branches::name.eq(name),
                    branches::head_state_id.eq(from_state),
                    branches::created_at.eq(at),
                    branches::updated_at.eq(at),
                ))
                .execute(conn)
                .await
                .map_err(|e| match db("branch", ACTION)(e) {
                    StoreError::Conflict { .. } => {
                        StoreError::conflict("branch", format!("branch {name:?} already exists"))
                    }
                    other => other,
                })?;
            Ok(())
        })
        .await?;
        Ok(Branch {
            project_id,
            name: name.to_owned(),
            head_state_id: from_state,
            created_at: at,
            updated_at: at,
        })
    }

    async fn branch(&self, project_id: Uuid, name: &str) -> StoreResult<Branch> {
        const ACTION: &str = "loading branch";
        let mut conn = self.conn(ACTION).await?;
        branches::table
            .find((project_id, name))
            .select(BranchRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db("branch", ACTION))?
            .map(Branch::from)
            .ok_or_else(|| StoreError::not_found("branch", name))
    }

    async fn list_branches(&self, project_id: Uuid) -> StoreResult<Vec<Branch>> {
        const ACTION: &str = "listing branches";
        let mut conn = self.conn(ACTION).await?;
        let mut list: Vec<Branch> = branches::table
            .filter(branches::project_id.eq(project_id))
            .select(BranchRow::as_select())
            .load(&mut conn)
            .await
            .map_err(db("branch", ACTION))?
            .into_iter()
            .map(Branch::from)
            .collect();
        sort_by_text(&mut list, |b| &b.name);
        Ok(list)
    }

    async fn append(&self, state: &NewState) -> StoreResult<StateRecord> {
        const ACTION: &str = "appending state";
        let changes = prepare_state(state)?;
        let at = now();
        let id = Uuid::now_v7();
        // Blobs go in hash order, once each: two appends storing the same new contents then
        // take the unique-index locks in the same order and cannot deadlock each other.
        let mut new_blobs: Vec<NewBlob<'_>> = changes
            .iter()
            .filter_map(|change| change.blob.as_ref())
            .map(|(hash, content)| NewBlob {
                hash,
                size: content.len() as i64,
                content,
                created_at: at,
            })
            .collect();
        new_blobs.sort_by(|a, b| a.hash.cmp(b.hash));
        new_blobs.dedup_by(|a, b| a.hash == b.hash);
        let files: Vec<NewStateFile<'_>> = changes
            .iter()
            .map(|change| NewStateFile {
                state_id: id,
                path: change.path,
                blob_hash: change.blob.as_ref().map(|(hash, _)| hash.as_str()),
            })
            .collect();

        let mut conn = self.conn(ACTION).await?;
        let sequence = conn
            .transaction::<_, TxError, _>(async |conn| {
                let sequence = match state.parent_id {
                    None => {
                        // First state of a branch: make sure the branch row exists (the
                        // project must, or the foreign key says MissingReference).
                        diesel::insert_into(branches::table)
                            .values((
                                branches::project_id.eq(state.project_id),
                                branches::name.eq(&state.branch),
                                branches::head_state_id.eq(None::<Uuid>),
                                branches::created_at.eq(at),
                                branches::updated_at.eq(at),
                            ))
                            .on_conflict_do_nothing()
                            .execute(conn)
                            .await
                            .map_err(db("state", ACTION))?;
                        1
                    }
                    Some(parent) => {
                        let found: Option<(Uuid, i64)> = states::table
                            .find(parent)
                            .select((states::project_id, states::sequence))
                            .first(conn)
                            .await
                            .optional()
                            .map_err(db("state", ACTION))?;
                        match found {
                            Some((project, sequence)) if project == state.project_id => {
                                sequence + 1
                            }
                            _ => return Err(StoreError::not_found("state", parent).into()),
                        }
                    }
                };

                // The compare-and-swap on the branch head is the optimistic-concurrency check.
                // The UPDATE locks the branch row; a concurrent append with the same parent
                // waits, then re-checks the condition against the moved head and matches
                // nothing.
                let moved = diesel::update(
                    branches::table
                        .find((state.project_id, &state.branch))
                        .filter(branches::head_state_id.is_not_distinct_from(state.parent_id)),
                )
                .set((branches::head_state_id.eq(id), branches::updated_at.eq(at)))
                .execute(conn)
                .await
                .map_err(db("state", ACTION))?;
                if moved == 0 {
                    let branch_exists = diesel::select(exists(
                        branches::table.find((state.project_id, &state.branch)),
                    ))
                    .get_result::<bool>(conn)
                    .await
                    .map_err(db("state", ACTION))?;
                    return Err(if branch_exists {
                        StoreError::conflict(
                            "state",
                            format!(
                                "the parent is no longer the head of branch {:?}",
                                state.branch
                            ),
                        )
                    } else {
                        StoreError::not_found("branch", &state.branch)
                    }
                    .into());
                }

                diesel::insert_into(states::table)
                    .values((
                        states::id.eq(id),
                        states::project_id.eq(state.project_id),
                        states::branch.eq(&state.branch),
                        states::parent_id.eq(state.parent_id),
                        states::run_id.eq(state.run_id),
                        states::sequence.eq(sequence),
                        states::step_label.eq(&state.step_label),
                        states::state.eq(&state.state),
                        states::created_at.eq(at),
                    ))
                    .execute(conn)
                    .await
                    .map_err(db("state", ACTION))?;
                for chunk in new_blobs.chunks(INSERT_CHUNK) {
                    diesel::insert_into(blobs::table)
                        .values(chunk)
                        .on_conflict_do_nothing()
                        .execute(conn)
                        .await
                        .map_err(db("blob", ACTION))?;
                }
                for chunk in files.chunks(INSERT_CHUNK) {
                    diesel::insert_into(state_files::table)
                        .values(chunk)
                        .execute(conn)
                        .await
                        .map_err(db("state file", ACTION))?;
                }
                Ok(sequence)
            })
            .await?;

        Ok(StateRecord {
            id,
            project_id: state.project_id,
            branch: state.branch.clone(),
            parent_id: state.parent_id,
            run_id: state.run_id,
            sequence,
            step_label: state.step_label.clone(),
            state: state.state.clone(),
            created_at: at,
        })
    }

    async fn get(&self, id: Uuid) -> StoreResult<StateRecord> {
        const ACTION: &str = "loading state";
        let mut conn = self.conn(ACTION).await?;
        states::table
            .find(id)
            .select(StateRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(db("state", ACTION))?
            .map(StateRecord::from)
            .ok_or_else(|| StoreError::not_found("state", id))
    }

    async fn head(&self, project_id: Uuid, branch: &str) -> StoreResult<Option<StateRecord>> {
        const ACTION: &str = "loading branch head";
        let mut conn = self.conn(ACTION).await?;
        // One statement: the branch and its head state as of the same snapshot.
        let found: Option<(Option<Uuid>, Option<StateRow>)> = branches::table
            .left_join(states::table.on(states::id.nullable().eq(branches::head_state_id)))
            .filter(branches::project_id.eq(project_id))
            .filter(branches::name.eq(branch))
            .select((branches::head_state_id, Option::<StateRow>::as_select()))
            .first(&mut conn)
            .await
            .optional()
            .map_err(db("branch", ACTION))?;
        match found {
            None => Err(StoreError::not_found("branch", branch)),
            Some((None, _)) => Ok(None),
            // head_state_id has no foreign key (see the migration); only `append` moves it, in
            // the transaction that inserts the state, so a dangling head is damage.
            Some((Some(head), None)) => Err(StoreError::corrupt(
                "branch",
                format!("branch {branch:?} points at state {head}, which does not exist"),
            )),
            Some((Some(_), Some(row))) => Ok(Some(row.into())),
        }
    }

    async fn history(&self, state_id: Uuid, from_sequence: i64) -> StoreResult<Vec<StateRecord>> {
        const ACTION: &str = "reading state history";
        let mut conn = self.conn(ACTION).await?;
        state_exists(&mut conn, state_id, ACTION).await?;
        // The walk stops below `from_sequence` instead of going to the root.
        let rows: Vec<StateRow> = diesel::sql_query(
            "WITH RECURSIVE chain(id, parent_id, sequence) AS (
                 SELECT id, parent_id, sequence FROM states WHERE id = $1
                 UNION ALL
                 SELECT s.id, s.parent_id, s.sequence FROM states s
                 JOIN chain c ON s.id = c.parent_id WHERE c.sequence > $2
             )
             SELECT st.id, st.project_id, st.branch, st.parent_id, st.run_id, st.sequence,
                    st.step_label, st.state, st.created_at
             FROM chain c JOIN states st ON st.id = c.id
             WHERE c.sequence >= $2 ORDER BY st.sequence",
        )
        .bind::<diesel::sql_types::Uuid, _>(state_id)
        .bind::<Int8, _>(from_sequence)
        .load(&mut conn)
        .await
        .map_err(db("state", ACTION))?;
        Ok(rows.into_iter().map(StateRecord::from).collect())
    }

    async fn changes(&self, state_id: Uuid) -> StoreResult<Vec<FileEntry>> {
        const ACTION: &str = "reading state changes";
        let mut conn = self.conn(ACTION).await?;
        state_exists(&mut conn, state_id, ACTION).await?;
        let mut entries: Vec<FileEntry> = state_files::table
            .filter(state_files::state_id.eq(state_id))
            .select((state_files::path, state_files::blob_hash))
            .load::<(String, Option<String>)>(&mut conn)
            .await
            .map_err(db("state file", ACTION))?
            .into_iter()
            .map(|(path, blob_hash)| FileEntry { path, blob_hash })
            .collect();
        sort_by_text(&mut entries, |e| &e.path);
        Ok(entries)
    }

    async fn files(&self, state_id: Uuid) -> StoreResult<BTreeMap<String, String>> {
        const ACTION: &str = "materialising state files";
        let mut conn = self.conn(ACTION).await?;
        state_exists(&mut conn, state_id, ACTION).await?;
        // The nearest change of each path along the chain wins; a deletion hides older writes.
        let rows: Vec<TreeRow> = diesel::sql_query(format!(
            "{CHAIN_CTE}
             SELECT path, blob_hash FROM (
                 SELECT DISTINCT ON (f.path) f.path, f.blob_hash
                 FROM chain c JOIN state_files f ON f.state_id = c.id
                 ORDER BY f.path, c.depth
             ) nearest
             WHERE blob_hash IS NOT NULL"
        ))
        .bind::<diesel::sql_types::Uuid, _>(state_id)
        .load(&mut conn)
        .await
        .map_err(db("state file", ACTION))?;
        Ok(rows
            .into_iter()
            .map(|row| (row.path, row.blob_hash))
            .collect())
    }
}

#[async_trait]
impl FileRepo for DieselPgStore {
    async fn put_blob(&self, content: &[u8]) -> StoreResult<String> {
        const ACTION: &str = "storing blob";
        let hash = blob_hash(content);
        let mut conn = self.conn(ACTION).await?;
        diesel::insert_into(blobs::table)
            .values(NewBlob {
                hash: &hash,
                size: content.len() as i64,
                content,
                created_at: now(),
            })
            .on_conflict_do_nothing()
            .execute(&mut conn)
            .await
            .map_err(db("blob", ACTION))?;
        Ok(hash)
    }

    async fn blob(&self, hash: &str) -> StoreResult<Vec<u8>> {
        const ACTION: &str = "loading blob";
        validate_hash(hash)?;
        let mut conn = self.conn(ACTION).await?;
        blobs::table
            .find(hash)
            .select(blobs::content)
            .first(&mut conn)
            .await
            .optional()
            .map_err(db("blob", ACTION))?
            .ok_or_else(|| StoreError::not_found("blob", hash))
    }

    async fn has_blob(&self, hash: &str) -> StoreResult<bool> {
        const ACTION: &str = "checking blob";
        validate_hash(hash)?;
        let mut conn = self.conn(ACTION).await?;
        diesel::select(exists(blobs::table.find(hash)))
            .get_result(&mut conn)
            .await
            .map_err(db("blob", ACTION))
    }

    async fn read_file(&self, state_id: Uuid, path: &str) -> StoreResult<Option<Vec<u8>>> {
        const ACTION: &str = "reading file";
        validate_path(path)?;
        let mut conn = self.conn(ACTION).await?;
        state_exists(&mut conn, state_id, ACTION).await?;
        let row: Option<ContentRow> = diesel::sql_query(format!(
            "{CHAIN_CTE}
             SELECT b.content FROM chain c
             JOIN state_files f ON f.state_id = c.id AND f.path = $2
             LEFT JOIN blobs b ON b.hash = f.blob_hash
             ORDER BY c.depth LIMIT 1"
        ))
        .bind::<diesel::sql_types::Uuid, _>(state_id)
        .bind::<Text, _>(path)
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(db("state file", ACTION))?;
        // No row: the path never existed; a NULL content: the nearest change deleted it.
        Ok(row.and_then(|row| row.content))
    }

    async fn collect_garbage(&self) -> StoreResult<u64> {
        const ACTION: &str = "collecting unreferenced blobs";
        let mut conn = self.conn(ACTION).await?;
        // A correlated NOT EXISTS (diesel's DSL has no correlated subqueries), driven by the
        // index on state_files.blob_hash.
        let rows = diesel::sql_query(
            "DELETE FROM blobs
             WHERE NOT EXISTS (SELECT 1 FROM state_files f WHERE f.blob_hash = blobs.hash)",
        )
        .execute(&mut conn)
        .await
        .map_err(db("blob", ACTION))?;
        Ok(rows as u64)
    }
}
