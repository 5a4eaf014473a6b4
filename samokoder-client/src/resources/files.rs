//! `/v1/projects/{project_id}/files`, `/states` and `/export`: what runs generated.

use std::path::Path;

use futures::TryStreamExt;
use samokoder_core::api::files::{
    FileTreeResponse, RollbackResponse, StateListQuery, StateListResponse, StateQuery,
};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::client::success;
use crate::operations as ops;
use crate::{Client, Error};

/// Generated files and the project's history; from [`Client::files`].
#[derive(Debug, Clone, Copy)]
pub struct Files<'a> {
    pub(crate) client: &'a Client,
}

impl Files<'_> {
    /// `GET /v1/projects/{project_id}/files`: the file tree of a state (default: the head).
    pub async fn tree(
        &self,
        project_id: Uuid,
        query: &StateQuery,
    ) -> Result<FileTreeResponse, Error> {
        let project = project_id.to_string();
        self.client
            .call(&ops::LIST_FILES, &[&project])
            .query(query)
            .send_json()
            .await
    }

    /// `GET /v1/projects/{project_id}/files/{path}`: one file's content, raw.
    pub async fn read(
        &self,
        project_id: Uuid,
        path: &str,
        query: &StateQuery,
    ) -> Result<Vec<u8>, Error> {
        let project = project_id.to_string();
        let response = self
            .client
            .call(&ops::GET_FILE, &[&project, path])
            .query(query)
            .send()
            .await?;
        Ok(success(response).await?.bytes().await?.to_vec())
    }

    /// `GET /v1/projects/{project_id}/states`: the project's history, newest first.
    pub async fn states(
        &self,
        project_id: Uuid,
        query: &StateListQuery,
    ) -> Result<StateListResponse, Error> {
        let project = project_id.to_string();
        self.client
            .call(&ops::LIST_STATES, &[&project])
            .query(query)
            .send_json()
            .await
    }

    /// `POST /v1/projects/{project_id}/states/{state_id}/rollback`: makes a new head with the
    /// files of an older state.
    pub async fn rollback(
        &self,
        project_id: Uuid,
        state_id: Uuid,
    ) -> Result<RollbackResponse, Error> {
        let (project, state) = (project_id.to_string(), state_id.to_string());
        self.client
            .call(&ops::ROLLBACK_STATE, &[&project, &state])
            .send_json()
            .await
    }

    /// `GET /v1/projects/{project_id}/export`: the files of a state as a zip, in memory.
    pub async fn export(&self, project_id: Uuid, query: &StateQuery) -> Result<Vec<u8>, Error> {
        let project = project_id.to_string();
        let response = self
            .client
            .call(&ops::EXPORT_PROJECT, &[&project])
            .query(query)
            .send()
            .await?;
        Ok(success(response).await?.bytes().await?.to_vec())
    }

    /// The export written to `destination` as it downloads (large projects need not fit in
    /// memory). The file is written beside it under a temporary name and renamed when
    /// complete, so a failed download never leaves a truncated zip under the final name.
    /// Returns the number of bytes written.
    pub async fn export_to_file(
        &self,
        project_id: Uuid,
        query: &StateQuery,
        destination: &Path,
    ) -> Result<u64, Error> {
        let project = project_id.to_string();
        let response = self
            .client
            .call(&ops::EXPORT_PROJECT, &[&project])
            .query(query)
            .send()
            .await?;
        let response = success(response).await?;
        let partial = partial_path(destination);
        let result = async {
            let mut file = tokio::fs::File::create(&partial)
                .await
                .map_err(|e| Error::io(format!("creating {}", partial.display()), e))?;
            let mut body = response.bytes_stream();
            let mut written = 0u64;
            while let Some(chunk) = body.try_next().await? {
                file.write_all(&chunk)
                    .await
                    .map_err(|e| Error::io(format!("writing {}", partial.display()), e))?;
                written += chunk.len() as u64;
            }
            file.sync_all()
                .await
                .map_err(|e| Error::io(format!("writing {}", partial.display()), e))?;
            tokio::fs::rename(&partial, destination)
                .await
                .map_err(|e| Error::io(format!("renaming to {}", destination.display()), e))?;
            Ok(written)
        }
        .await;
        if result.is_err() {
            // Nothing useful is left in a partial download.
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result
    }

    /// `GET /v1/projects/{project_id}/archive`: the same zip under the path the original web
    /// app linked to.
    pub async fn archive(&self, project_id: Uuid, query: &StateQuery) -> Result<Vec<u8>, Error> {
        let project = project_id.to_string();
        let response = self
            .client
            .call(&ops::ARCHIVE_PROJECT_ZIP, &[&project])
            .query(query)
            .send()
            .await?;
        Ok(success(response).await?.bytes().await?.to_vec())
    }
}

/// `<name>.part` beside `destination`.
fn partial_path(destination: &Path) -> std::path::PathBuf {
    let mut name = destination
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_else(|| "export.zip".into());
    name.push(".part");
    destination.with_file_name(name)
}
