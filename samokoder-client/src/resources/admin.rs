//! `/v1/admin/*`: account administration.

use samokoder_core::api::Tier;
use samokoder_core::api::admin::{AdminUserResponse, SetTierRequest};
use uuid::Uuid;

use crate::operations as ops;
use crate::{Client, Error};

/// Administration; from [`Client::admin`]. Administrators only (others get 403).
#[derive(Debug, Clone, Copy)]
pub struct Admin<'a> {
    pub(crate) client: &'a Client,
}

impl Admin<'_> {
    /// `PUT /v1/admin/users/{user_id}/tier`: changes a user's tier.
    pub async fn set_tier(&self, user_id: Uuid, tier: Tier) -> Result<AdminUserResponse, Error> {
        let id = user_id.to_string();
        self.client
            .call(&ops::ADMIN_SET_TIER, &[&id])
            .json(&SetTierRequest { tier })
            .send_json()
            .await
    }
}
