//! Placeholder until the LLM-layer benches land (LLM issue).
fn main() {}
