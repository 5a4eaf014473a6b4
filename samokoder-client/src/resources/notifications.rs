//! `/v1/notifications/*`: the caller's notifications.

use samokoder_core::api::SuccessResponse;
use samokoder_core::api::notifications::{
    MarkAllReadResponse, NotificationListQuery, NotificationListResponse, NotificationResponse,
    TestNotificationRequest,
};
use uuid::Uuid;

use crate::operations as ops;
use crate::{Client, Error};

/// Notification operations; from [`Client::notifications`].
#[derive(Debug, Clone, Copy)]
pub struct Notifications<'a> {
    pub(crate) client: &'a Client,
}

impl Notifications<'_> {
    /// `GET /v1/notifications`: one page, newest first (pass `next_before` as `before`).
    pub async fn list(
        &self,
        query: &NotificationListQuery,
    ) -> Result<NotificationListResponse, Error> {
        self.client
            .call(&ops::LIST_NOTIFICATIONS, &[])
            .query(query)
            .send_json()
            .await
    }

    /// `POST /v1/notifications/{notification_id}/read`.
    pub async fn mark_read(&self, notification_id: Uuid) -> Result<SuccessResponse, Error> {
        let id = notification_id.to_string();
        self.client
            .call(&ops::MARK_NOTIFICATION_READ, &[&id])
            .send_json()
            .await
    }

    /// `POST /v1/notifications/read-all`.
    pub async fn mark_all_read(&self) -> Result<MarkAllReadResponse, Error> {
        self.client
            .call(&ops::MARK_ALL_NOTIFICATIONS_READ, &[])
            .send_json()
            .await
    }

    /// `DELETE /v1/notifications/{notification_id}`.
    pub async fn delete(&self, notification_id: Uuid) -> Result<(), Error> {
        let id = notification_id.to_string();
        self.client
            .call(&ops::DELETE_NOTIFICATION, &[&id])
            .send_empty()
            .await
    }

    /// `POST /v1/notifications/test`: sends the caller a notification.
    pub async fn send_test(
        &self,
        request: &TestNotificationRequest,
    ) -> Result<NotificationResponse, Error> {
        self.client
            .call(&ops::TEST_NOTIFICATION, &[])
            .json(request)
            .send_json()
            .await
    }
}
