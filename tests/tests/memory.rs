//! `tufd::memory::release`, called after every trust operation: it gives
//! freed memory back to the system after a large operation, and leaves the
//! pages of a small one mapped (trimming them would only have the next
//! request fault them in again). Measured by this process's resident set,
//! alone in its test binary.

/// Resident bytes of this process.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Allocates `bytes` in 16 KiB blocks, touched, then frees every other
/// one: half of it is freed in pieces glibc cannot give back by itself
/// (they sit between live blocks). Returns the live half.
fn fragment(bytes: usize) -> Vec<Vec<u8>> {
    let mut blocks: Vec<Vec<u8>> = (0..bytes / 16384).map(|_| vec![1u8; 16384]).collect();
    let mut i = 0;
    blocks.retain(|_| {
        i += 1;
        i % 2 == 0
    });
    blocks
}

#[test]
fn release_gives_back_a_large_operations_memory_and_keeps_a_small_ones() {
    // Small: 1 MiB allocated, 512 KiB freed: kept mapped.
    let small = fragment(1 << 20);
    let before = rss();
    tufd::memory::release();
    let after = rss();
    assert!(
        before.saturating_sub(after) < 128 << 10,
        "a small operation's pages were given back: {before} -> {after} bytes"
    );
    // Large: 64 MiB allocated, 32 MiB freed: given back.
    let large = fragment(64 << 20);
    let before = rss();
    tufd::memory::release();
    let after = rss();
    assert!(
        before.saturating_sub(after) > 16 << 20,
        "a large operation's freed memory stayed: {before} -> {after} bytes"
    );
    drop((small, large));
}
