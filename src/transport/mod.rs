//! Transports turn platform events into engine events and replies into platform messages.

pub mod console;
#[cfg(feature = "matrix")]
pub mod matrix;
pub mod stdio;
