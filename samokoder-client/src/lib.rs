//! # samokoder-client
//!
//! A typed async client for the Samokoder HTTP API. Requests and answers are the wire types of
//! [`samokoder_core::api`] — the very types the server is built on — so the two cannot
//! disagree on a field. With the `cli` feature the crate also builds the `samokoder`
//! command-line tool.
//!
//! ## Shape
//!
//! A [`Client`] talks to one server. Its operations are grouped by resource, each group a
//! handle borrowed from the client: `client.auth()`, `client.projects()`, `client.runs()`
//! (with the event stream, [`RunEvents`]), `client.files()` (with the zip export),
//! `client.preview()`, `client.workspace()`, `client.keys()`, `client.models()`,
//! `client.usage()`, `client.user()`, `client.notifications()`, `client.analytics()`,
//! `client.admin()`; `client.health()`, `client.ready()` and `client.metrics()` are on the
//! client itself. [`operations::OPERATIONS`] lists every
//! operation of the OpenAPI document with the method that calls it (a test keeps the two in
//! step).
//!
//! ## Sessions
//!
//! [`Auth::login`](resources::Auth::login) and [`Auth::register`](resources::Auth::register)
//! start a [`Session`]; every later call carries its access token (as a bearer header, or as
//! the cookie with [`AuthMode::Cookies`]). When a call answers 401 the client exchanges the
//! refresh token for a new pair **once** and repeats the call once. Refresh tokens rotate and
//! the server ends a session whose spent refresh token is presented again, so concurrent 401s
//! share one refresh rather than each making their own. The session can be read, saved
//! (it is `Serialize`; its `Debug` hides the tokens) and restored, and
//! [`ClientBuilder::on_session_change`] reports each rotation so a saved copy stays current.
//!
//! ## Errors
//!
//! Every call returns [`Error`]: [`Error::Api`] carries the server's status, `code`,
//! `detail`, `request_id` and field errors ([`ApiError`]); the other variants say why no
//! answer was had.
//!
//! ```no_run
//! use samokoder_client::Client;
//!
//! # async fn demo() -> Result<(), samokoder_client::Error> {
//! let client = Client::new("http://127.0.0.1:8000")?;
//! client.auth().register("ada@example.com", "Correct-Horse-9!").await?;
//! let me = client.auth().me().await?;
//! println!("{} on the {} tier", me.email, me.tier);
//! if let Err(error) = client.projects().get(uuid::Uuid::nil()).await {
//!     let api = error.api().expect("the server answered");
//!     println!("{} {} (request {:?})", api.status(), api.code(), api.request_id());
//! }
//! # Ok(()) }
//! ```

mod client;
mod error;
mod events;
pub mod operations;
mod pagination;
pub mod resources;
mod session;

pub use client::{AuthMode, Client, ClientBuilder};
pub use error::{ApiError, Error};
pub use events::{EventStreamOptions, RunEvents};
pub use session::Session;

/// The wire types, re-exported so users of the client need not depend on `samokoder-core`.
pub use samokoder_core::api;
