//! `/v1/projects/*`: the caller's projects.

use futures::Stream;
use samokoder_core::api::projects::{
    ProjectCreateRequest, ProjectDetailResponse, ProjectListQuery, ProjectListResponse,
    ProjectResponse, ProjectUpdateRequest,
};
use uuid::Uuid;

use crate::operations as ops;
use crate::{Client, Error};

/// Project operations; from [`Client::projects`].
#[derive(Debug, Clone, Copy)]
pub struct Projects<'a> {
    pub(crate) client: &'a Client,
}

impl Projects<'_> {
    /// `GET /v1/projects`: one page, newest first. Pass the page's `next_cursor` as `cursor`
    /// for the next one, or use [`list_all`](Self::list_all).
    pub async fn list(&self, query: &ProjectListQuery) -> Result<ProjectListResponse, Error> {
        self.client
            .call(&ops::LIST_PROJECTS, &[])
            .query(query)
            .send_json()
            .await
    }

    /// Every project matching `query` (its `cursor` is the starting point, normally `None`),
    /// fetching page after page as the stream is read. A failed page ends the stream with
    /// its error.
    ///
    /// ```no_run
    /// use futures::TryStreamExt;
    /// use samokoder_core::api::projects::ProjectListQuery;
    ///
    /// # async fn demo(client: samokoder_client::Client) -> Result<(), samokoder_client::Error> {
    /// let names: Vec<String> = client
    ///     .projects()
    ///     .list_all(ProjectListQuery::default())
    ///     .map_ok(|project| project.name)
    ///     .try_collect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn list_all(
        &self,
        query: ProjectListQuery,
    ) -> impl Stream<Item = Result<ProjectResponse, Error>> + Send + 'static {
        let client = self.client.clone();
        crate::pagination::paginate(query, move |query| {
            let client = client.clone();
            async move {
                let page = client.projects().list(&query).await?;
                let next = page.next_cursor.map(|cursor| ProjectListQuery {
                    cursor: Some(cursor),
                    ..query
                });
                Ok((page.projects, next))
            }
        })
    }

    /// `POST /v1/projects`: creates a project (subject to the tier's project quota, 402).
    pub async fn create(&self, request: &ProjectCreateRequest) -> Result<ProjectResponse, Error> {
        let detail: ProjectDetailResponse = self
            .client
            .call(&ops::CREATE_PROJECT, &[])
            .json(request)
            .send_json()
            .await?;
        Ok(detail.project)
    }

    /// `GET /v1/projects/{project_id}`.
    pub async fn get(&self, project_id: Uuid) -> Result<ProjectResponse, Error> {
        let id = project_id.to_string();
        let detail: ProjectDetailResponse = self
            .client
            .call(&ops::GET_PROJECT, &[&id])
            .send_json()
            .await?;
        Ok(detail.project)
    }

    /// `PATCH /v1/projects/{project_id}`: changes the fields that are set.
    pub async fn update(
        &self,
        project_id: Uuid,
        request: &ProjectUpdateRequest,
    ) -> Result<ProjectResponse, Error> {
        self.change(&ops::PATCH_PROJECT, project_id, request).await
    }

    /// `PUT /v1/projects/{project_id}`: the same partial update as [`update`](Self::update)
    /// under the verb the original API used.
    pub async fn put(
        &self,
        project_id: Uuid,
        request: &ProjectUpdateRequest,
    ) -> Result<ProjectResponse, Error> {
        self.change(&ops::UPDATE_PROJECT, project_id, request).await
    }

    async fn change(
        &self,
        operation: &'static ops::Operation,
        project_id: Uuid,
        request: &ProjectUpdateRequest,
    ) -> Result<ProjectResponse, Error> {
        let id = project_id.to_string();
        let detail: ProjectDetailResponse = self
            .client
            .call(operation, &[&id])
            .json(request)
            .send_json()
            .await?;
        Ok(detail.project)
    }

    /// `DELETE /v1/projects/{project_id}`: deletes the project and everything generated in it.
    pub async fn delete(&self, project_id: Uuid) -> Result<(), Error> {
        let id = project_id.to_string();
        self.client
            .call(&ops::DELETE_PROJECT, &[&id])
            .send_empty()
            .await
    }

    /// `POST /v1/projects/{project_id}/archive`: hides it from the default listing.
    pub async fn archive(&self, project_id: Uuid) -> Result<ProjectResponse, Error> {
        self.flag(&ops::ARCHIVE_PROJECT, project_id).await
    }

    /// `POST /v1/projects/{project_id}/unarchive`.
    pub async fn unarchive(&self, project_id: Uuid) -> Result<ProjectResponse, Error> {
        self.flag(&ops::UNARCHIVE_PROJECT, project_id).await
    }

    async fn flag(
        &self,
        operation: &'static ops::Operation,
        project_id: Uuid,
    ) -> Result<ProjectResponse, Error> {
        let id = project_id.to_string();
        let detail: ProjectDetailResponse = self.client.call(operation, &[&id]).send_json().await?;
        Ok(detail.project)
    }
}
