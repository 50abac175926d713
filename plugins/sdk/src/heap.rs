//! The plugin's heap: dlmalloc, growing linear memory 2 MiB at a time.
//!
//! Every call gets its own memory, fresh or (on Linux) a finished call's, cleared. Each fresh
//! page it touches costs the host a page fault: the columns the host copies in, and everything
//! the plugin allocates. The host (on Linux) backs every whole, aligned 2 MiB of accessible
//! plugin memory with one huge page instead of 512 small ones, but only if memory becomes
//! accessible in such steps. The default allocator grows memory by as little as 64 KiB at a
//! time, so this one asks for 2 MiB-aligned steps. It is the same algorithm (dlmalloc) as the
//! one it replaces, and it falls back to the exact size needed when the host refuses a
//! rounded-up step (a memory limit that is not a multiple of 2 MiB).

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32::{memory_grow, memory_size};
use core::cell::UnsafeCell;

/// The size of a WebAssembly page.
const WASM_PAGE: usize = 64 * 1024;
/// Grow memory to multiples of this, the unit of a huge page on the host.
const STEP: usize = 2 << 20;

/// Where dlmalloc gets memory from: `memory.grow`, rounded up to the next 2 MiB boundary.
struct Steps;

// SAFETY: `alloc` returns memory that `memory.grow` just made accessible to this module and no one
// else uses; nothing is ever given back, as WebAssembly memory cannot shrink.
unsafe impl dlmalloc::Allocator for Steps {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        let exact = size.div_ceil(WASM_PAGE);
        // Up to the next 2 MiB boundary, unless that would pass the end of the address space.
        let rounded = memory_size(0).checked_mul(WASM_PAGE).and_then(|end| {
            let target = end.checked_add(size)?.checked_next_multiple_of(STEP)?;
            Some((target - end) / WASM_PAGE)
        });
        // The exact size only if it differs: a refused request is not worth repeating.
        for pages in rounded.into_iter().filter(|&pages| pages != exact).chain([exact]) {
            let previous = memory_grow(0, pages);
            if previous == usize::MAX {
                continue;
            }
            let (base, len) = (previous * WASM_PAGE, pages * WASM_PAGE);
            // A region may not end at the very end of the address space (its end pointer would
            // wrap to 0); dlmalloc copes with a region a little short of a page multiple.
            let len = if base.checked_add(len).is_none() { len - 16 } else { len };
            return (core::ptr::with_exposed_provenance_mut(base), len, 0);
        }
        (core::ptr::null_mut(), 0, 0)
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        core::ptr::null_mut()
    }

    fn free_part(&self, _ptr: *mut u8, _old: usize, _new: usize) -> bool {
        false
    }

    fn free(&self, _ptr: *mut u8, _size: usize) -> bool {
        false
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        false
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        WASM_PAGE
    }
}

/// The global allocator of every plugin built with the SDK.
struct Heap(UnsafeCell<dlmalloc::Dlmalloc<Steps>>);

// SAFETY: a component instance runs on one thread (wasm32-wasip2 has no threads), so the heap is
// never used from two threads at once.
unsafe impl Sync for Heap {}

#[cfg(target_feature = "atomics")]
compile_error!("the SDK's heap assumes a single-threaded plugin (built without `atomics`)");

// SAFETY: forwards to dlmalloc, which upholds `GlobalAlloc`'s contract; see `Sync` above for
// exclusive access.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { (*self.0.get()).malloc(layout.size(), layout.align()) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { (*self.0.get()).calloc(layout.size(), layout.align()) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { (*self.0.get()).free(ptr, layout.size(), layout.align()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { (*self.0.get()).realloc(ptr, layout.size(), layout.align(), new_size) }
    }
}

#[global_allocator]
static HEAP: Heap = Heap(UnsafeCell::new(dlmalloc::Dlmalloc::new_with_allocator(Steps)));
