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

use std::alloc::{GlobalAlloc, Layout, System};

/// See the module documentation.
pub struct ZeroingAllocator;

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
            std::ptr::write_bytes(ptr, 0, layout.size());
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
