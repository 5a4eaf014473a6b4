//! `/v1/workspace/token` and `/v1/ws/{project_id}`: the browser WebSocket.

use samokoder_core::api::workspace::{WorkspaceTokenRequest, WorkspaceTokenResponse};
use url::Url;
use uuid::Uuid;

use crate::operations as ops;
use crate::{Client, Error};

/// The project WebSocket; from [`Client::workspace`]. This client follows runs over
/// server-sent events ([`Runs::events`](crate::resources::Runs::events)); these methods are for
/// programs that hand the socket to a WebSocket library or a browser.
#[derive(Debug, Clone, Copy)]
pub struct Workspace<'a> {
    pub(crate) client: &'a Client,
}

impl Workspace<'_> {
    /// `POST /v1/workspace/token`: a single-use token, valid for a minute, that opens the
    /// project's WebSocket.
    pub async fn token(&self, project_id: Uuid) -> Result<WorkspaceTokenResponse, Error> {
        self.client
            .call(&ops::WORKSPACE_TOKEN, &[])
            .json(&WorkspaceTokenRequest { project_id })
            .send_json()
            .await
    }

    /// The `ws://` or `wss://` URL of `GET /v1/ws/{project_id}` with `?token=` from
    /// [`token`](Self::token), to open with a WebSocket library.
    pub fn socket_url(
        &self,
        project_id: Uuid,
        token: &WorkspaceTokenResponse,
    ) -> Result<Url, Error> {
        let project = project_id.to_string();
        let mut url = self
            .client
            .url_for(ops::WORKSPACE_SOCKET.path, &[&project])?;
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme)
            .map_err(|()| Error::InvalidRequest(format!("cannot make a WebSocket URL of {url}")))?;
        url.query_pairs_mut().append_pair("token", &token.token);
        Ok(url)
    }
}
