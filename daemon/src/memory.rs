//! Giving memory back after large requests.
//!
//! A 100 000-tag repository passes through several 9 MB buffers and a
//! million small allocations per operation. glibc keeps freed memory in its
//! arenas (one per thread that ever allocated, up to 8 per core), so the
//! daemon would keep the high-water mark of its largest request for good.
//! [`configure`] bounds the arenas and has every large buffer mapped on its
//! own (returned to the system when freed); [`release`] hands freed pages
//! in every arena back after a large operation.

/// Arenas glibc may create: enough for the executor and the blocking pool
/// not to contend, few enough that freed memory is not spread thin.
const ARENAS: libc::c_int = 2;

/// Allocations at least this large get their own mapping, freed at once.
/// Fixed, so glibc does not raise it after the first large free (its
/// dynamic threshold would move 9 MB buffers into the arenas).
const MMAP_THRESHOLD: libc::c_int = 1024 * 1024;

/// Sets the allocator's limits; call once at start, before threads exist.
pub fn configure() {
    // SAFETY: mallopt only changes allocator parameters; both values are in
    // range for glibc.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Free memory the arenas may keep without [`release`] trimming them:
/// small operations (a sign into a small repository frees well under a
/// megabyte) then leave their pages mapped for the next, instead of giving
/// them back only to fault them in again.
const KEEP_FREE: usize = 4 * 1024 * 1024;

/// Returns freed memory of every arena to the system (glibc's
/// `malloc_trim`) when the arenas hold more than [`KEEP_FREE`] of it:
/// after an operation that may have been large.
pub fn release() {
    // SAFETY: mallinfo2 only reads the allocator's statistics and
    // malloc_trim only releases free pages; both are thread-safe.
    unsafe {
        if libc::mallinfo2().fordblks > KEEP_FREE {
            libc::malloc_trim(0);
        }
    }
}

/// [`release`] on a blocking thread, shared by the operations that end
/// meanwhile: when one is already asked for and has not started, it will
/// cover this operation's freed memory too (a burst of 32 signs asks once
/// or twice instead of 32 times; each `mallinfo2` walks every free chunk).
/// Call from within the runtime, after an operation that may have been
/// large.
pub fn release_later() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static ASKED: AtomicBool = AtomicBool::new(false);
    if ASKED.swap(true, Ordering::AcqRel) {
        return;
    }
    drop(tokio::task::spawn_blocking(|| {
        // Cleared before the work: an operation ending from here on asks
        // again, so none is left uncovered.
        ASKED.store(false, Ordering::Release);
        release();
    }));
}
