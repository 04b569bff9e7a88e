//! The scheduler: the only place that schedules attempts and emits [`crate::event::RunEvent`]s.
