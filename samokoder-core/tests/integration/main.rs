//! The integration tests of samokoder-core: one binary (faster to link), one module per area.

#[cfg(feature = "fake-llm")]
mod engine;
#[cfg(feature = "engine")]
mod isolation;
#[cfg(feature = "fake-llm")]
mod llm;
#[cfg(feature = "engine")]
mod runner;
#[cfg(feature = "engine")]
mod sandbox;
#[cfg(feature = "engine")]
mod templates;
#[cfg(feature = "engine")]
mod workspace;
