//! Transports turn platform events into engine events and replies into platform messages.

pub mod console;
