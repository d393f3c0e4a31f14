//! A global allocator that counts the bytes and allocations live in the process, for tests
//! that bound memory by what the program allocates rather than by RSS (which glibc's arenas and
//! other tests running in parallel make noisy). A test binary opts in with
//! `#[global_allocator] static A: Counting = Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_ALLOCS: AtomicI64 = AtomicI64::new(0);

/// glibc malloc's cost per allocation beyond the requested size: an 8-byte chunk header plus
/// rounding to 16 bytes (8 on average).
pub const MALLOC_CHUNK_OVERHEAD: i64 = 16;

/// The system allocator, counting.
pub struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        LIVE_ALLOCS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
}

/// Bytes the program holds now, each allocation charged its malloc chunk overhead too.
pub fn live_bytes() -> i64 {
    LIVE_BYTES.load(Ordering::Relaxed) + MALLOC_CHUNK_OVERHEAD * LIVE_ALLOCS.load(Ordering::Relaxed)
}

/// Allocations live now.
pub fn live_allocs() -> i64 {
    LIVE_ALLOCS.load(Ordering::Relaxed)
}
