//! YAML text -> [`model::Job`]: raw serde types with spans, validation with located
//! diagnostics, and `${env.X}` / `${vars.X}` interpolation.

pub mod model;
