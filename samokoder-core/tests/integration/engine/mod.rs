//! The generation engine end to end: the fake provider over real HTTP answers as a model
//! would, commands run in the real sandbox, checkpoints go through a `RunStore`.

mod e2e;
mod guards;
mod human;
mod port;
mod resume;
mod sandbox;
mod support;
