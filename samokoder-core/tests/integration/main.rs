//! The integration tests of samokoder-core: one binary (faster to link), one module per area.

#[cfg(feature = "fake-llm")]
mod llm;
