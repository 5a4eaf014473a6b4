//! The operations, grouped by resource. Each group is a small borrowing handle made by a
//! [`Client`] method (`client.projects()`), so calls read `client.projects().get(id)`.

mod admin;
mod analytics;
mod auth;
mod keys;
mod models;
mod notifications;
mod projects;
mod usage;
mod user;

pub use admin::Admin;
pub use analytics::Analytics;
pub use auth::Auth;
pub use keys::Keys;
pub use models::Models;
pub use notifications::Notifications;
pub use projects::Projects;
pub use usage::Usage;
pub use user::User;

use crate::Client;

impl Client {
    /// Registration, login, refresh, logout, the current user, password change.
    pub fn auth(&self) -> Auth<'_> {
        Auth { client: self }
    }

    /// The caller's projects.
    pub fn projects(&self) -> Projects<'_> {
        Projects { client: self }
    }

    /// The caller's LLM provider keys.
    pub fn keys(&self) -> Keys<'_> {
        Keys { client: self }
    }

    /// The providers and models the deployment knows.
    pub fn models(&self) -> Models<'_> {
        Models { client: self }
    }

    /// LLM usage figures.
    pub fn usage(&self) -> Usage<'_> {
        Usage { client: self }
    }

    /// The profile, the tier, version-control tokens.
    pub fn user(&self) -> User<'_> {
        User { client: self }
    }

    /// The caller's notifications.
    pub fn notifications(&self) -> Notifications<'_> {
        Notifications { client: self }
    }

    /// Product analytics.
    pub fn analytics(&self) -> Analytics<'_> {
        Analytics { client: self }
    }

    /// Account administration (administrators).
    pub fn admin(&self) -> Admin<'_> {
        Admin { client: self }
    }
}
