//! Plugin linear memories that the kernel can back with transparent huge pages (Linux).
//!
//! A fresh instance touches every page of its memory for the first time: the columns the host
//! copies in, the plugin's own allocations, the results it builds. With 4 KiB pages that is a
//! page fault per 4 KiB, which on 100k coins cost more than the copying itself. Each memory here
//! is laid out as wasmtime lays out its own (a reservation that is inaccessible until the plugin
//! grows into it, guard regions either side, so compiled code needs no bounds checks), with two
//! differences: the memory starts on a 2 MiB boundary and is advised `MADV_HUGEPAGE`. Whenever a
//! whole aligned 2 MiB of it is accessible, the kernel backs it with one huge page on first
//! touch. The SDK grows plugin memory in such steps (`plugins/sdk/src/heap.rs`).
//!
//! Nothing past the plugin's current size is ever accessible, exactly as with wasmtime's own
//! memories: huge pages change how the kernel backs memory, not what the plugin can reach.

// The one module of the host that manages memory by hand: wasmtime's `MemoryCreator` is an
// unsafe trait, and the mapping is made with raw system calls.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::Arc;

use rustix::mm::{
    Advice, MapFlags, MprotectFlags, ProtFlags, madvise, mmap_anonymous, mprotect, munmap,
};
use wasmtime::{LinearMemory, MemoryCreator, MemoryType};

/// The unit the kernel backs a huge-page mapping in on x86-64 and aarch64.
const HUGE_PAGE: usize = 2 << 20;

/// Configures `config` so that plugin memories are [`HugePageMemory`]s.
pub fn configure(config: &mut wasmtime::Config) {
    // Data segments are copied in at instantiation: copy-on-write images need wasmtime's own
    // memories.
    config.memory_init_cow(false).with_host_memory(Arc::new(HugePageCreator));
}

#[derive(Debug)]
struct HugePageCreator;

// SAFETY: every memory is a fresh mapping owned by the returned object, laid out as wasmtime asks
// (`reserved` bytes that never move, then `guard` inaccessible bytes), with exactly its current
// size accessible and zero-filled when first exposed; see `HugePageMemory`.
unsafe impl MemoryCreator for HugePageCreator {
    fn new_memory(
        &self,
        _ty: MemoryType,
        minimum: usize,
        maximum: Option<usize>,
        reserved_size_in_bytes: Option<usize>,
        guard_size_in_bytes: usize,
    ) -> Result<Box<dyn LinearMemory>, String> {
        // Without a reservation from the engine, reserve for the largest the memory may become.
        let reservation = reserved_size_in_bytes
            .or(maximum)
            .ok_or("a plugin memory without a maximum size needs a reservation")?
            .max(minimum);
        HugePageMemory::new(minimum, reservation, guard_size_in_bytes)
            .map(|m| Box::new(m) as _)
            .map_err(|e| {
                format!("could not reserve {reservation} bytes for a plugin's linear memory: {e}")
            })
    }
}

/// One linear memory: `reservation` bytes from a 2 MiB-aligned base, of which the first `size`
/// are readable and writable and the rest inaccessible, between inaccessible guard regions.
#[derive(Debug)]
struct HugePageMemory {
    /// The whole mapping, as returned by `mmap`.
    mapping: NonNull<c_void>,
    mapping_len: usize,
    base: NonNull<u8>,
    reservation: usize,
    size: usize,
}

// SAFETY: the mapping is owned by this value alone and reached only through wasmtime, which
// serialises access to a store's memories.
unsafe impl Send for HugePageMemory {}
unsafe impl Sync for HugePageMemory {}

impl HugePageMemory {
    fn new(size: usize, reservation: usize, guard: usize) -> rustix::io::Result<Self> {
        let too_big = || rustix::io::Errno::NOMEM;
        // A guard before the memory as well as after, as wasmtime's own memories have, and room
        // to align the base.
        let mapping_len = guard
            .checked_mul(2)
            .and_then(|g| g.checked_add(reservation))
            .and_then(|l| l.checked_add(HUGE_PAGE))
            .ok_or_else(too_big)?;
        // SAFETY: a new mapping at an address of the kernel's choosing overlaps nothing. It is
        // inaccessible and NORESERVE, so it costs address space only.
        let mapping = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                mapping_len,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )?
        };
        let mapping = NonNull::new(mapping).ok_or_else(too_big)?;
        // SAFETY: `guard + align_offset < guard + HUGE_PAGE`, so the base, the reservation and
        // the guard after it lie inside the mapping.
        let base = unsafe {
            let after_guard = mapping.cast::<u8>().add(guard);
            after_guard.add(after_guard.as_ptr().align_offset(HUGE_PAGE))
        };
        let mut memory = Self { mapping, mapping_len, base, reservation, size: 0 };
        // Advice only: without it (or without THP in the kernel) memory works the same, in 4 KiB
        // pages. SAFETY: the range is part of our own mapping.
        let _ = unsafe { madvise(base.as_ptr().cast(), reservation, Advice::LinuxHugepage) };
        memory.make_accessible(size)?;
        Ok(memory)
    }

    /// Makes the first `new_size` bytes readable and writable.
    fn make_accessible(&mut self, new_size: usize) -> rustix::io::Result<()> {
        if new_size > self.reservation {
            return Err(rustix::io::Errno::NOMEM);
        }
        // The kernel protects whole pages: a size between pages would expose the rest of its
        // last page. WebAssembly's 64 KiB pages never are; smaller custom page sizes are refused.
        if !new_size.is_multiple_of(rustix::param::page_size()) {
            return Err(rustix::io::Errno::INVAL);
        }
        if new_size > self.size {
            // SAFETY: `[size, new_size)` lies inside the reservation, which only this memory
            // uses; those bytes were inaccessible, so nothing has touched them and they are zero.
            unsafe {
                mprotect(
                    self.base.as_ptr().add(self.size).cast(),
                    new_size - self.size,
                    MprotectFlags::READ | MprotectFlags::WRITE,
                )?;
            }
            self.size = new_size;
        }
        Ok(())
    }
}

impl Drop for HugePageMemory {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours, and wasmtime drops the memory after its last use.
        let _ = unsafe { munmap(self.mapping.as_ptr(), self.mapping_len) };
    }
}

// SAFETY: `as_ptr` is stable for the memory's life (it never moves), exactly `byte_size` bytes
// from it are accessible, `guard` inaccessible bytes follow the reservation, and growth never
// leaves the reservation.
unsafe impl LinearMemory for HugePageMemory {
    fn byte_size(&self) -> usize {
        self.size
    }

    fn byte_capacity(&self) -> usize {
        self.reservation
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        self.make_accessible(new_size).map_err(|e| {
            wasmtime::format_err!(
                "the plugin's linear memory cannot grow to {new_size} bytes (reserved {}): {e}",
                self.reservation
            )
        })
    }

    fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WASM_PAGE: usize = 64 << 10;

    #[test]
    fn memory_is_aligned_zeroed_and_grows_only_within_its_reservation() {
        let mut memory = HugePageMemory::new(WASM_PAGE, 64 << 20, 1 << 20).unwrap();
        assert_eq!(memory.as_ptr() as usize % HUGE_PAGE, 0, "base not on a huge page");
        assert_eq!((memory.byte_size(), memory.byte_capacity()), (WASM_PAGE, 64 << 20));

        let base = memory.as_ptr();
        memory.grow_to(3 * HUGE_PAGE + WASM_PAGE).unwrap();
        assert_eq!(memory.as_ptr(), base, "growing moved the base");
        let size = memory.byte_size();
        assert_eq!(size, 3 * HUGE_PAGE + WASM_PAGE);
        // SAFETY: `size` bytes from the base are accessible, as the memory says.
        let bytes = unsafe { std::slice::from_raw_parts_mut(base, size) };
        assert!(bytes.iter().all(|b| *b == 0), "fresh memory is not zero");
        // The last byte is writable (a fault here would end the test process).
        bytes[size - 1] = 7;

        let error = memory.grow_to(size + 1).unwrap_err();
        assert!(error.to_string().contains("cannot grow"), "{error}");
        let error = memory.grow_to((64 << 20) + WASM_PAGE).unwrap_err();
        assert!(error.to_string().contains("cannot grow"), "{error}");
        assert_eq!(memory.byte_size(), size, "a refused growth changed the size");
    }
}
