//! The operations, grouped by resource. Each group is a small borrowing handle made by a
//! [`Client`] method (`client.projects()`), so calls read `client.projects().get(id)`.

mod admin;
mod analytics;
mod auth;
mod files;
mod keys;
mod models;
mod notifications;
mod preview;
mod projects;
mod runs;
mod usage;
mod user;
mod workspace;

pub use admin::Admin;
pub use analytics::Analytics;
pub use auth::Auth;
pub use files::Files;
pub use keys::Keys;
pub use models::Models;
pub use notifications::Notifications;
pub use preview::Preview;
pub use projects::Projects;
pub use runs::Runs;
pub use usage::Usage;
pub use user::User;
pub use workspace::Workspace;

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

    /// Generation runs, their events and questions.
    pub fn runs(&self) -> Runs<'_> {
        Runs { client: self }
    }

    /// Generated files, the project's history, the zip export.
    pub fn files(&self) -> Files<'_> {
        Files { client: self }
    }

    /// Previews of the generated app.
    pub fn preview(&self) -> Preview<'_> {
        Preview { client: self }
    }

    /// The project WebSocket's token and URL.
    pub fn workspace(&self) -> Workspace<'_> {
        Workspace { client: self }
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
