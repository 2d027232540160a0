//! Locking that outlives a panic elsewhere: the data behind these mutexes (queues,
//! maps of reply addresses, counters) stays usable after a thread panicked holding
//! the lock, and the bot must keep answering rather than cascade the panic.

use std::sync::{Mutex, MutexGuard};

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
