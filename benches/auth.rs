//! Placeholder until the auth benches land (samokoder-auth issue).
fn main() {}
