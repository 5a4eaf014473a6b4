//! The LLM layer against the fake provider: real HTTP, real SSE, the real provider code.

mod anthropic;
mod budget;
mod cancellation;
mod config;
mod failures;
mod openai;
mod parallel;
mod records;
mod structured;
mod support;
