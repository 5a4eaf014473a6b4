//! `/v1/analytics/*`: product analytics.

use samokoder_core::api::SuccessResponse;
use samokoder_core::api::analytics::{
    AnalyticsExportQuery, AnalyticsExportResponse, RecordActionRequest, SystemAnalyticsResponse,
    UserActionsQuery, UserActionsResponse, UserAnalyticsResponse,
};

use crate::operations as ops;
use crate::{Client, Error};

/// Analytics operations; from [`Client::analytics`]. `system` and `export` are for
/// administrators.
#[derive(Debug, Clone, Copy)]
pub struct Analytics<'a> {
    pub(crate) client: &'a Client,
}

impl Analytics<'_> {
    /// `POST /v1/analytics/record`: records an action of the caller.
    pub async fn record(&self, request: &RecordActionRequest) -> Result<SuccessResponse, Error> {
        self.client
            .call(&ops::RECORD_ACTION, &[])
            .json(request)
            .send_json()
            .await
    }

    /// `GET /v1/analytics/user`: the caller's activity.
    pub async fn user(&self) -> Result<UserAnalyticsResponse, Error> {
        self.client
            .call(&ops::USER_ANALYTICS, &[])
            .send_json()
            .await
    }

    /// `GET /v1/analytics/user/actions`: the caller's latest actions.
    pub async fn user_actions(
        &self,
        query: &UserActionsQuery,
    ) -> Result<UserActionsResponse, Error> {
        self.client
            .call(&ops::USER_ACTIONS, &[])
            .query(query)
            .send_json()
            .await
    }

    /// `GET /v1/analytics/system`: system-wide activity (administrators).
    pub async fn system(&self) -> Result<SystemAnalyticsResponse, Error> {
        self.client
            .call(&ops::SYSTEM_ANALYTICS, &[])
            .send_json()
            .await
    }

    /// `GET /v1/analytics/export`: every user's actions, one page (administrators).
    pub async fn export(
        &self,
        query: &AnalyticsExportQuery,
    ) -> Result<AnalyticsExportResponse, Error> {
        self.client
            .call(&ops::EXPORT_ANALYTICS, &[])
            .query(query)
            .send_json()
            .await
    }
}
