//! `/v1/projects/{project_id}/preview/*`: run the generated app to try it.

use samokoder_core::api::preview::{
    PreviewInfo, PreviewOpenResponse, PreviewStatusResponse, PreviewStopResponse,
};
use uuid::Uuid;

use crate::operations as ops;
use crate::{Client, Error};

/// Preview operations; from [`Client::preview`].
#[derive(Debug, Clone, Copy)]
pub struct Preview<'a> {
    pub(crate) client: &'a Client,
}

impl Preview<'_> {
    /// `POST /v1/projects/{project_id}/preview/start`: starts the app of the project's head
    /// in the server's sandbox (restarting it if it runs) and waits a little for it to listen.
    pub async fn start(&self, project_id: Uuid) -> Result<PreviewInfo, Error> {
        let project = project_id.to_string();
        self.client
            .call(&ops::START_PREVIEW, &[&project])
            .send_json()
            .await
    }

    /// `POST /v1/projects/{project_id}/preview/stop`.
    pub async fn stop(&self, project_id: Uuid) -> Result<PreviewStopResponse, Error> {
        let project = project_id.to_string();
        self.client
            .call(&ops::STOP_PREVIEW, &[&project])
            .send_json()
            .await
    }

    /// `GET /v1/projects/{project_id}/preview/status` (also keeps an idle preview alive).
    pub async fn status(&self, project_id: Uuid) -> Result<PreviewStatusResponse, Error> {
        let project = project_id.to_string();
        self.client
            .call(&ops::PREVIEW_STATUS, &[&project])
            .send_json()
            .await
    }

    /// `POST /v1/projects/{project_id}/preview/open`: a link for a browser into the running
    /// preview, on its own origin, good once within [`PreviewOpenResponse::expires_in`]
    /// seconds.
    pub async fn open(&self, project_id: Uuid) -> Result<PreviewOpenResponse, Error> {
        let project = project_id.to_string();
        self.client
            .call(&ops::OPEN_PREVIEW, &[&project])
            .send_json()
            .await
    }
}
