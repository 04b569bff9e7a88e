//! Reporters: pure consumers of the [`crate::event::RunEvent`] stream.
