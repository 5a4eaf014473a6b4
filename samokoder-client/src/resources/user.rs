//! `/v1/user/*`: the profile, the tier with its limits, version-control tokens.

use samokoder_core::api::MessageResponse;
use samokoder_core::api::user::{TierResponse, UserProfileResponse, VcsTokenRequest};

use crate::operations as ops;
use crate::{Client, Error};

/// Account operations; from [`Client::user`].
#[derive(Debug, Clone, Copy)]
pub struct User<'a> {
    pub(crate) client: &'a Client,
}

impl User<'_> {
    /// `GET /v1/user/profile`.
    pub async fn profile(&self) -> Result<UserProfileResponse, Error> {
        self.client.call(&ops::USER_PROFILE, &[]).send_json().await
    }

    /// `GET /v1/user/tier`: the tier, its limits and this month's use of them.
    pub async fn tier(&self) -> Result<TierResponse, Error> {
        self.client.call(&ops::USER_TIER, &[]).send_json().await
    }

    /// `POST /v1/user/github-token`: stores a GitHub personal access token (encrypted).
    pub async fn set_github_token(&self, token: &str) -> Result<MessageResponse, Error> {
        self.client
            .call(&ops::SET_GITHUB_TOKEN, &[])
            .json(&VcsTokenRequest {
                token: token.to_owned(),
            })
            .send_json()
            .await
    }

    /// `POST /v1/user/gitverse-token`: stores a GitVerse personal access token (encrypted).
    pub async fn set_gitverse_token(&self, token: &str) -> Result<MessageResponse, Error> {
        self.client
            .call(&ops::SET_GITVERSE_TOKEN, &[])
            .json(&VcsTokenRequest {
                token: token.to_owned(),
            })
            .send_json()
            .await
    }
}
