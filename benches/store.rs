//! Placeholder until the store benches land (store issue).
fn main() {}
