//! The daemon's allocator: the system allocator, zeroing every block when
//! it is freed.
//!
//! Secrets reach the daemon in buffers it does not own: hyper's and h2's
//! receive buffers, tonic's decode buffer, prost's strings. The daemon
//! moves the fields it knows into `secrecy`/`zeroize` types, but the
//! request bytes they were decoded from would stay in freed memory until
//! reused. Zeroing on free removes them once the request is done (and with
//! them every other freed copy), at the cost of one memset per free; the
//! daemon allocates little, so this is cheap. `realloc` goes through
//! alloc/copy/free, so a grown buffer leaves no copy behind either.
//!
//! Large blocks (role files of a 100 000-tag repository are 8.6 MB) are not
//! written over: their whole pages are handed back to the kernel with
//! `madvise(MADV_DONTNEED)`, after which they read as zeros (private
//! anonymous memory), and only the partial pages at either end are set to
//! zero. Same guarantee, no pass over megabytes of memory about to be
//! unmapped anyway, and the pages leave the RSS at once.

use std::alloc::{GlobalAlloc, Layout, System};

/// See the module documentation.
pub struct ZeroingAllocator;

/// Blocks at least this large are cleared by `madvise` (see the module
/// documentation).
const MADVISE_FROM: usize = 256 * 1024;

/// Sets `len` bytes at `ptr` to zero: whole pages by `MADV_DONTNEED`, the
/// rest by writing. Falls back to writing everything if `madvise` fails.
///
/// # Safety
/// `ptr..ptr + len` must be memory of this process's private anonymous
/// mappings (the heap or glibc's own mappings) owned by the caller.
unsafe fn clear(ptr: *mut u8, len: usize) {
    const PAGE: usize = 4096;
    let start = ptr as usize;
    let first = start.next_multiple_of(PAGE);
    let end = start + len;
    let last = end - end % PAGE;
    // SAFETY: every write and the madvise stay inside `ptr..ptr + len`,
    // which the caller owns; DONTNEED on private anonymous pages makes them
    // read as zeros.
    unsafe {
        if len >= MADVISE_FROM
            && last > first
            && libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_DONTNEED,
            ) == 0
        {
            std::ptr::write_bytes(ptr, 0, first - start);
            std::ptr::write_bytes(last as *mut u8, 0, end - last);
        } else {
            std::ptr::write_bytes(ptr, 0, len);
        }
    }
}

// SAFETY: every method forwards to `System` with the same layout; `dealloc`
// writes zeros only inside the block it is about to free (which the caller
// owns exclusively), and `realloc` keeps `GlobalAlloc`'s default
// alloc/copy/dealloc contract.
unsafe impl GlobalAlloc for ZeroingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is a live block of `layout.size()` bytes that the
        // caller gives up. `black_box` keeps the memset from being removed
        // as a dead store before the free.
        unsafe {
            clear(ptr, layout.size());
            std::hint::black_box(ptr);
            System.dealloc(ptr, layout);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the default contract: a new block, the old contents
        // copied, the old block zeroed and freed by `dealloc`.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A large block starting and ending inside pages is all zeros after
    /// `clear` (whole pages by madvise, the ends by writing), and the bytes
    /// around it are untouched; a small block is written over.
    #[test]
    fn clear_zeroes_exactly_the_block() {
        for (offset, len) in [
            (7, MADVISE_FROM + 12_345),
            (4096, 2 * MADVISE_FROM),
            (3, 100),
        ] {
            let mut buf = vec![0xAAu8; offset + len + 64];
            // SAFETY: the range lies inside `buf`, heap memory owned here.
            unsafe { clear(buf.as_mut_ptr().add(offset), len) };
            assert!(
                buf[..offset].iter().all(|&b| b == 0xAA),
                "before, len {len}"
            );
            assert!(
                buf[offset..offset + len].iter().all(|&b| b == 0),
                "inside, len {len}"
            );
            assert!(
                buf[offset + len..].iter().all(|&b| b == 0xAA),
                "after, len {len}"
            );
        }
    }
}
