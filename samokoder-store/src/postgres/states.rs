//! Branches, checkpointed states, their file changes and content-addressed blobs on PostgreSQL.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::{PgStore, RowExt, commit, err};
use crate::common::prepare_state;
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use crate::repo::{FileRepo, StateRepo};

macro_rules! state_columns {
    () => {
        "id, project_id, branch, parent_id, run_id, sequence, step_label, state, created_at"
    };
}

fn state_from_row(row: &PgRow) -> StoreResult<StateRecord> {
    Ok(StateRecord {
        id: row.col("id")?,
        project_id: row.col("project_id")?,
        branch: row.col("branch")?,
        parent_id: row.col("parent_id")?,
        run_id: row.col("run_id")?,
        sequence: row.col("sequence")?,
        step_label: row.col("step_label")?,
        state: row.col("state")?,
        created_at: row.col("created_at")?,
    })
}

fn branch_from_row(row: &PgRow) -> StoreResult<Branch> {
    Ok(Branch {
        project_id: row.col("project_id")?,
        name: row.col("name")?,
        head_state_id: row.col("head_state_id")?,
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

/// The recursive walk from a state to the root of its chain; `depth` 0 is the state itself.
macro_rules! chain_cte {
    () => {
        "WITH RECURSIVE chain(id, parent_id, depth) AS (
             SELECT id, parent_id, 0 FROM states WHERE id = $1
             UNION ALL
             SELECT s.id, s.parent_id, c.depth + 1 FROM states s JOIN chain c ON s.id = c.parent_id
         ) "
    };
}

impl PgStore {
    async fn state_exists(&self, id: Uuid, action: &'static str) -> StoreResult<()> {
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM states WHERE id = $1)")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .map_err(err("state", action))?;
        if exists {
            Ok(())
        } else {
            Err(StoreError::not_found("state", id))
        }
    }
}

#[async_trait]
impl StateRepo for PgStore {
    async fn create_branch(
        &self,
        project_id: Uuid,
        name: &str,
        from_state: Option<Uuid>,
    ) -> StoreResult<Branch> {
        const ACTION: &str = "creating branch";
        validate_name("branch name", name)?;
        let mut tx = self.begin(ACTION).await?;
        if let Some(from) = from_state {
            let owner: Option<Uuid> =
                sqlx::query_scalar("SELECT project_id FROM states WHERE id = $1")
                    .bind(from)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err("branch", ACTION))?;
            if owner != Some(project_id) {
                return Err(StoreError::not_found("state", from));
            }
        }
        let at = now();
        sqlx::query(
            "INSERT INTO branches (project_id, name, head_state_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(project_id)
        .bind(name)
        .bind(from_state)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(|e| match err("branch", ACTION)(e) {
            StoreError::Conflict { .. } => {
                StoreError::conflict("branch", format!("branch {name:?} already exists"))
            }
            other => other,
        })?;
        commit(tx, ACTION).await?;
        Ok(Branch {
            project_id,
            name: name.to_owned(),
            head_state_id: from_state,
            created_at: at,
            updated_at: at,
        })
    }

    async fn branch(&self, project_id: Uuid, name: &str) -> StoreResult<Branch> {
        sqlx::query(
            "SELECT project_id, name, head_state_id, created_at, updated_at FROM branches
             WHERE project_id = $1 AND name = $2",
        )
        .bind(project_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(err("branch", "loading branch"))?
        .map(|row| branch_from_row(&row))
        .transpose()?
        .ok_or_else(|| StoreError::not_found("branch", name))
    }

    async fn list_branches(&self, project_id: Uuid) -> StoreResult<Vec<Branch>> {
        let rows = sqlx::query(
            "SELECT project_id, name, head_state_id, created_at, updated_at FROM branches
             WHERE project_id = $1 ORDER BY name",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .map_err(err("branch", "listing branches"))?;
        rows.iter().map(branch_from_row).collect()
    }

    async fn append(&self, state: &NewState) -> StoreResult<StateRecord> {
        const ACTION: &str = "appending state";
        let changes = prepare_state(state)?;
        let at = now();
        let id = Uuid::now_v7();
        let mut tx = self.begin(ACTION).await?;

        let sequence = match state.parent_id {
            None => {
                // First state of a branch: make sure the branch row exists (the project must).
                sqlx::query(
                    "INSERT INTO branches (project_id, name, head_state_id, created_at, updated_at)
                     VALUES ($1, $2, NULL, $3, $3) ON CONFLICT DO NOTHING",
                )
                .bind(state.project_id)
                .bind(&state.branch)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(err("state", ACTION))?;
                1
            }
            Some(parent) => {
                let row = sqlx::query("SELECT project_id, sequence FROM states WHERE id = $1")
                    .bind(parent)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err("state", ACTION))?;
                match row {
                    Some(row) if row.col::<Uuid>("project_id")? == state.project_id => {
                        row.col::<i64>("sequence")? + 1
                    }
                    _ => return Err(StoreError::not_found("state", parent)),
                }
            }
        };

        // The compare-and-swap on the branch head is the optimistic-concurrency check: it
        // matches only if nobody moved the head since the caller read it.
        let moved = sqlx::query(
            "UPDATE branches SET head_state_id = $3, updated_at = $4
             WHERE project_id = $1 AND name = $2 AND head_state_id IS NOT DISTINCT FROM $5",
        )
        .bind(state.project_id)
        .bind(&state.branch)
        .bind(id)
        .bind(at)
        .bind(state.parent_id)
        .execute(&mut *tx)
        .await
        .map_err(err("state", ACTION))?
        .rows_affected();
        if moved == 0 {
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM branches WHERE project_id = $1 AND name = $2)",
            )
            .bind(state.project_id)
            .bind(&state.branch)
            .fetch_one(&mut *tx)
            .await
            .map_err(err("state", ACTION))?;
            return Err(if exists {
                StoreError::conflict(
                    "state",
                    format!(
                        "the parent is no longer the head of branch {:?}",
                        state.branch
                    ),
                )
            } else {
                StoreError::not_found("branch", &state.branch)
            });
        }

        sqlx::query(concat!(
            "INSERT INTO states (",
            state_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(id)
        .bind(state.project_id)
        .bind(&state.branch)
        .bind(state.parent_id)
        .bind(state.run_id)
        .bind(sequence)
        .bind(&state.step_label)
        .bind(&state.state)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(err("state", ACTION))?;

        // Blobs go in hash order: two transactions storing the same new contents then take the
        // unique-index locks in the same order and cannot deadlock.
        let mut blobs: Vec<(&str, &[u8])> = changes
            .iter()
            .filter_map(|c| {
                c.blob
                    .as_ref()
                    .map(|(hash, content)| (hash.as_str(), *content))
            })
            .collect();
        blobs.sort_unstable_by_key(|(hash, _)| *hash);
        blobs.dedup_by_key(|(hash, _)| *hash);
        for (hash, content) in blobs {
            sqlx::query(
                "INSERT INTO blobs (hash, size, content, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (hash) DO NOTHING",
            )
            .bind(hash)
            .bind(content.len() as i64)
            .bind(content)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(err("blob", ACTION))?;
        }
        for change in &changes {
            sqlx::query("INSERT INTO state_files (state_id, path, blob_hash) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(change.path)
                .bind(change.blob.as_ref().map(|(hash, _)| hash.as_str()))
                .execute(&mut *tx)
                .await
                .map_err(err("state file", ACTION))?;
        }
        commit(tx, ACTION).await?;

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
        sqlx::query(concat!(
            "SELECT ",
            state_columns!(),
            " FROM states WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(err("state", "loading state"))?
        .map(|row| state_from_row(&row))
        .transpose()?
        .ok_or_else(|| StoreError::not_found("state", id))
    }

    async fn head(&self, project_id: Uuid, branch: &str) -> StoreResult<Option<StateRecord>> {
        let head = StateRepo::branch(self, project_id, branch)
            .await?
            .head_state_id;
        match head {
            None => Ok(None),
            Some(id) => StateRepo::get(self, id).await.map(Some),
        }
    }

    async fn history(&self, state_id: Uuid, from_sequence: i64) -> StoreResult<Vec<StateRecord>> {
        self.state_exists(state_id, "reading state history").await?;
        let rows = sqlx::query(
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
        .bind(state_id)
        .bind(from_sequence)
        .fetch_all(&self.pool)
        .await
        .map_err(err("state", "reading state history"))?;
        rows.iter().map(state_from_row).collect()
    }

    async fn changes(&self, state_id: Uuid) -> StoreResult<Vec<FileEntry>> {
        self.state_exists(state_id, "reading state changes").await?;
        let rows = sqlx::query(
            "SELECT path, blob_hash FROM state_files WHERE state_id = $1 ORDER BY path",
        )
        .bind(state_id)
        .fetch_all(&self.pool)
        .await
        .map_err(err("state file", "reading state changes"))?;
        rows.iter()
            .map(|row| {
                Ok(FileEntry {
                    path: row.col("path")?,
                    blob_hash: row.col("blob_hash")?,
                })
            })
            .collect()
    }

    async fn files(&self, state_id: Uuid) -> StoreResult<BTreeMap<String, String>> {
        self.state_exists(state_id, "materialising state files")
            .await?;
        // The nearest change of each path along the chain wins; a deletion hides older writes.
        let rows = sqlx::query(concat!(
            chain_cte!(),
            ", ranked AS (
                 SELECT f.path, f.blob_hash,
                        ROW_NUMBER() OVER (PARTITION BY f.path ORDER BY c.depth) AS rn
                 FROM chain c JOIN state_files f ON f.state_id = c.id
             )
             SELECT path, blob_hash FROM ranked
             WHERE rn = 1 AND blob_hash IS NOT NULL ORDER BY path"
        ))
        .bind(state_id)
        .fetch_all(&self.pool)
        .await
        .map_err(err("state file", "materialising state files"))?;
        rows.iter()
            .map(|row| Ok((row.col("path")?, row.col("blob_hash")?)))
            .collect()
    }
}

#[async_trait]
impl FileRepo for PgStore {
    async fn put_blob(&self, content: &[u8]) -> StoreResult<String> {
        let hash = blob_hash(content);
        sqlx::query(
            "INSERT INTO blobs (hash, size, content, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (hash) DO NOTHING",
        )
        .bind(&hash)
        .bind(content.len() as i64)
        .bind(content)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(err("blob", "storing blob"))?;
        Ok(hash)
    }

    async fn blob(&self, hash: &str) -> StoreResult<Vec<u8>> {
        validate_hash(hash)?;
        sqlx::query_scalar("SELECT content FROM blobs WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(err("blob", "loading blob"))?
            .ok_or_else(|| StoreError::not_found("blob", hash))
    }

    async fn has_blob(&self, hash: &str) -> StoreResult<bool> {
        validate_hash(hash)?;
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM blobs WHERE hash = $1)")
            .bind(hash)
            .fetch_one(&self.pool)
            .await
            .map_err(err("blob", "checking blob"))
    }

    async fn read_file(&self, state_id: Uuid, path: &str) -> StoreResult<Option<Vec<u8>>> {
        validate_path(path)?;
        self.state_exists(state_id, "reading file").await?;
        let row = sqlx::query(concat!(
            chain_cte!(),
            "SELECT b.content FROM chain c
             JOIN state_files f ON f.state_id = c.id AND f.path = $2
             LEFT JOIN blobs b ON b.hash = f.blob_hash
             ORDER BY c.depth LIMIT 1"
        ))
        .bind(state_id)
        .bind(path)
        .fetch_optional(&self.pool)
        .await
        .map_err(err("state file", "reading file"))?;
        // No row: the path never existed; a NULL content: the nearest change deleted it.
        match row {
            None => Ok(None),
            Some(row) => row.col("content"),
        }
    }

    async fn collect_garbage(&self) -> StoreResult<u64> {
        Ok(sqlx::query(
            "DELETE FROM blobs
             WHERE NOT EXISTS (SELECT 1 FROM state_files f WHERE f.blob_hash = blobs.hash)",
        )
        .execute(&self.pool)
        .await
        .map_err(err("blob", "collecting unreferenced blobs"))?
        .rows_affected())
    }
}
