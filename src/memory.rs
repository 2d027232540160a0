//! Handing freed heap memory back to the operating system.
//!
//! glibc's allocator keeps what a program frees for reuse and returns memory to the
//! system only from the top of the heap. Start-up allocates and frees several MiB at
//! once (compiling the crisis lexicon's regexes peaks at ~12 MiB, the first Matrix
//! sync parses a large response), and those pages would stay resident in the middle of
//! the heap for the life of the process: about 7 of a Matrix bot's 16 MiB of private
//! memory (BENCHMARKS.md). `malloc_trim(0)` gives whole free pages back. Other C
//! libraries (musl) return memory on their own; there this does nothing.

use std::time::Duration;

/// How often the bot's housekeeping hands free pages back. A trim walks glibc's free
/// lists under its lock, well under a millisecond on a bot's heap of a few MiB.
pub const RELEASE_EVERY: Duration = Duration::from_secs(30);

/// Return free heap pages to the system (glibc); a no-op elsewhere.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            // glibc, <malloc.h>: int malloc_trim(size_t pad);
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim has no preconditions: it takes the allocator's own locks
        // and releases only pages that hold no allocation.
        unsafe {
            malloc_trim(0);
        }
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::release_freed;

    fn rss_anon_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("RssAnon in /proc/self/status")
    }

    #[test]
    fn freed_pages_in_the_middle_of_the_heap_go_back_to_the_system() {
        // 32 MiB in 1 KiB blocks (below the allocator's mmap threshold, so on the heap),
        // then every block freed but one in 64: the heap's top stays in use, so nothing
        // is returned on its own, and 31.5 MiB of free pages sit between the survivors.
        let mut blocks: Vec<Vec<u8>> = (0..32 * 1024).map(|i| vec![i as u8; 1024]).collect();
        let survivors: Vec<Vec<u8>> =
            blocks.drain(..).enumerate().filter(|(i, _)| i % 64 == 63).map(|(_, b)| b).collect();
        std::hint::black_box(&survivors);
        let before = rss_anon_kib();
        release_freed();
        let after = rss_anon_kib();
        // Other tests allocate in parallel; 16 of the 31.5 MiB is a margin they cannot eat.
        assert!(before.saturating_sub(after) >= 16 * 1024, "RssAnon {before} kB before the trim, {after} kB after");
        std::hint::black_box(survivors);
    }
}
