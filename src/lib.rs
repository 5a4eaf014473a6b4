//! # samokoder
//!
//! One dependency for embedding Samokoder: it re-exports the crates behind features.
//!
//! | module | crate | feature |
//! |---|---|---|
//! | [`core`] | `samokoder-core` (wire types; engine with `engine`) | always |
//! | [`auth`] | `samokoder-auth` | always |
//! | `store` | `samokoder-store` | any storage backend feature |
//! | `server` | `samokoder-server` | `server` |
//! | `client` | `samokoder-client` | `client` |

pub use samokoder_auth as auth;
pub use samokoder_core as core;

#[cfg(feature = "client")]
pub use samokoder_client as client;
#[cfg(feature = "server")]
pub use samokoder_server as server;
#[cfg(any(
    feature = "sqlx-sqlite",
    feature = "sqlx-postgres",
    feature = "diesel-postgres"
))]
pub use samokoder_store as store;
