//! End-to-end tests across the crates: the real server on port 0 with its workers, the typed
//! client, and the fake LLM over HTTP scripted like a model.

mod generation;
mod support;
