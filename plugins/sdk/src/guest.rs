//! The guest half of ABI v1 on wasm32: a bump allocator over linear memory, the bodies of
//! the exports that `export_policy!` wires up, and the trapping panic handler. The host
//! calls `lk_reset`, `lk_alloc`, writes the request, calls `lk_evaluate` and reads the
//! decision. This is the only unsafe code in latchkey's plugins; it stays in this file.

#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use latchkey_policy_abi::view::Request;
use latchkey_policy_abi::{ABI_VERSION, Decision};

use crate::Policy;

const PAGE: usize = 65_536;

unsafe extern "C" {
    /// First byte after the module's static data and stack, placed by the linker (`wasm-ld`
    /// resolves it at link time, so it is not an import).
    static __heap_base: u8;
}

fn heap_base() -> usize {
    (&raw const __heap_base) as usize
}

/// A bump allocator over the module's linear memory, from `__heap_base` up.
///
/// Allocation moves a cursor; freeing only rolls the cursor back when the block was the
/// last one handed out (enough for the temporaries of encoding). [`BumpAllocator::reset`]
/// forgets everything at once, which is the point: the host resets between decisions, so
/// no decision can see or depend on an earlier one, and a decision costs no free-list
/// work. Rejected: a general-purpose allocator (dlmalloc, talc) adds kilobytes of code to
/// keep memory that a reset would throw away anyway.
#[derive(Debug)]
pub struct BumpAllocator {
    /// Next free address; 0 means "at `__heap_base`" (its address is not a constant).
    /// Atomic only so the static is `Sync` without unsafe: wasm32 modules here have one
    /// thread, and relaxed atomics compile to plain loads and stores.
    next: AtomicUsize,
}

impl BumpAllocator {
    /// An empty heap.
    pub const fn new() -> Self {
        BumpAllocator {
            next: AtomicUsize::new(0),
        }
    }

    /// Forget every allocation; the memory stays (wasm memory cannot shrink) and is reused.
    pub fn reset(&self) {
        self.next.store(0, Relaxed);
    }

    fn cursor(&self) -> usize {
        match self.next.load(Relaxed) {
            0 => heap_base(),
            n => n,
        }
    }

    /// Reserve `size` bytes aligned to `align` (a power of two); `None` when memory cannot
    /// grow that far (the host's page limit, or the 4 GiB address space).
    fn allocate(&self, size: usize, align: usize) -> Option<usize> {
        let start = self.cursor().checked_add(align.wrapping_sub(1))? & !align.wrapping_sub(1);
        let end = start.checked_add(size)?;
        ensure_memory(end)?;
        self.next.store(end, Relaxed);
        Some(start)
    }

    /// The `len` bytes at `ptr` if they lie wholly inside what this heap has handed out
    /// since the last reset (so the host wrote them through `lk_alloc`, and no later
    /// allocation can overlap them).
    fn handed_out(&self, ptr: usize, len: usize) -> Option<&[u8]> {
        let end = ptr.checked_add(len)?;
        if len == 0 || ptr < heap_base() || end > self.cursor() {
            return None;
        }
        // Safety: `ptr..end` lies between `__heap_base` and the cursor, i.e. inside linear
        // memory that exists (the cursor never passes the memory size) and inside blocks
        // this allocator handed out, which no Rust value owns while the host fills them
        // (`lk_alloc` returns raw memory). Allocations made while the slice lives start at
        // or above the cursor, so nothing writes to it while it is borrowed.
        Some(unsafe { core::slice::from_raw_parts(ptr as *const u8, len) })
    }
}

impl Default for BumpAllocator {
    fn default() -> Self {
        Self::new()
    }
}

/// Grow linear memory until it holds address `end - 1`.
fn ensure_memory(end: usize) -> Option<()> {
    let have = wasm32::memory_size(0).checked_mul(PAGE)?;
    if end <= have {
        return Some(());
    }
    let pages = (end - have).div_ceil(PAGE);
    // `memory_grow` returns the previous size in pages, or usize::MAX when refused.
    (wasm32::memory_grow(0, pages) != usize::MAX).then_some(())
}

// Safety: `alloc` returns null or a block of `layout.size()` bytes aligned to
// `layout.align()` that no other live block overlaps (the cursor only moves past it, and
// only moves back over a block when that block is freed or reset); `realloc` keeps the
// first `min(old, new)` bytes. Single-threaded, so no two calls interleave.
unsafe impl GlobalAlloc for BumpAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.allocate(layout.size(), layout.align()) {
            Some(addr) => addr as *mut u8,
            None => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Only the last block can be given back; the rest waits for `reset`.
        if (ptr as usize).checked_add(layout.size()) == Some(self.cursor()) {
            self.next.store(ptr as usize, Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let addr = ptr as usize;
        // The last block grows (or shrinks) in place: the usual case when a Vec is filled.
        if addr.checked_add(layout.size()) == Some(self.cursor()) {
            return match addr.checked_add(new_size).and_then(|end| {
                ensure_memory(end)?;
                Some(end)
            }) {
                Some(end) => {
                    self.next.store(end, Relaxed);
                    ptr
                }
                None => core::ptr::null_mut(),
            };
        }
        let Some(new) = self.allocate(new_size, layout.align()) else {
            return core::ptr::null_mut();
        };
        let new = new as *mut u8;
        // Safety: `ptr` holds `layout.size()` initialised bytes (caller's contract) and
        // `new` is a fresh block of `new_size` bytes above the cursor, so the two do not
        // overlap and both have at least `min(old, new)` bytes.
        unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        new
    }
}

/// A panic traps: the host sees a fault and fails closed (and discards the instance). Left
/// to std when the `cases` feature links it (native-only test builds compiled for wasm32).
#[cfg(not(feature = "cases"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    wasm32::unreachable()
}

/// `lk_abi_version`.
pub fn abi_version() -> i32 {
    ABI_VERSION as i32
}

/// `lk_alloc`: `len` bytes for the host to write a request into; 0 when `len` is not
/// positive or memory cannot grow.
pub fn alloc(heap: &BumpAllocator, len: i32) -> i32 {
    let Ok(len) = usize::try_from(len) else {
        return 0;
    };
    if len == 0 {
        return 0;
    }
    heap.allocate(len, 1).map_or(0, |addr| addr as i32)
}

/// `lk_evaluate`: decode the request at `ptr..ptr+len` (borrowing its strings in place),
/// decide it, and return `(decision_ptr << 32) | decision_len` of the encoded decision,
/// which stays valid until the next `lk_reset`. Bytes that were not handed out by `lk_alloc`, are not a request,
/// or carry trailing garbage get `Decision::deny("undecodable request")`. Running out of
/// memory traps, and the host fails closed.
pub fn evaluate<P: Policy>(heap: &BumpAllocator, ptr: i32, len: i32) -> i64 {
    // i32 is how wasm passes addresses; reinterpret as the u32 they are.
    let bytes = heap.handed_out(ptr as u32 as usize, len as u32 as usize);
    let request = bytes.and_then(|b| Request::decode(b).ok());
    let decision = match request {
        Some(request) => {
            let decision = P::decide(&request);
            // `lk_reset` frees the whole heap before the next decision; walking the
            // request to free each of its lists first would be wasted work.
            core::mem::forget(request);
            decision
        }
        None => Decision::deny("undecodable request"),
    };
    let bytes = decision.to_bytes().leak();
    ((bytes.as_ptr() as u32 as u64) << 32 | bytes.len() as u32 as u64) as i64
}
