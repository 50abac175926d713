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
//! A finished memory's mapping is kept (a bounded number of them, per engine) and handed to the
//! next memory, so that instance after instance reuses pages the kernel has already backed,
//! as natively compiled code reuses its heap. Every byte an earlier instance could reach is
//! zeroed before a later one can: a plugin sees exactly what a fresh memory would show it.
//!
//! Nothing past the plugin's current size is ever accessible, exactly as with wasmtime's own
//! memories: huge pages and reuse change how the kernel backs memory, not what the plugin can
//! reach.

// The one module of the host that manages memory by hand: wasmtime's `MemoryCreator` is an
// unsafe trait, and the mapping is made with raw system calls.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, PoisonError};

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
    config.memory_init_cow(false).with_host_memory(Arc::new(HugePageCreator::default()));
}

/// How many finished memories a creator keeps for reuse, and how many bytes of them may have been
/// written. A pipeline's plugins run one at a time, so one kept memory serves the next; the
/// bytes bound what stays resident between runs.
const KEPT_MEMORIES: usize = 2;
const KEPT_BYTES: usize = 64 << 20;

#[derive(Debug, Default)]
struct HugePageCreator {
    /// Memories whose instances are gone: inaccessible, their pages still backed.
    kept: Arc<Mutex<Vec<Reservation>>>,
}

// SAFETY: every memory owns its mapping alone, laid out as wasmtime asks (`reserved` bytes that
// never move, then `guard` inaccessible bytes), with exactly its current size accessible and
// reading zero when first exposed, whether the mapping is fresh or kept from an earlier memory;
// see `HugePageMemory`.
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
        let kept = {
            let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            let fits = kept
                .iter()
                .position(|r| (r.reservation, r.guard) == (reservation, guard_size_in_bytes));
            fits.map(|at| kept.swap_remove(at))
        };
        let mapping = match kept {
            Some(mapping) => mapping,
            None => Reservation::new(reservation, guard_size_in_bytes).map_err(|e| {
                format!("could not reserve {reservation} bytes for a plugin's linear memory: {e}")
            })?,
        };
        let mut memory = HugePageMemory {
            mapping: Some(mapping),
            size: 0,
            reusable: true,
            kept: Arc::clone(&self.kept),
        };
        memory.make_accessible(minimum).map_err(|e| {
            format!("could not make {minimum} bytes of a plugin's memory usable: {e}")
        })?;
        Ok(Box::new(memory))
    }
}

/// A mapping for one linear memory at a time: `reservation` bytes from a 2 MiB-aligned base
/// between inaccessible guard regions of `guard` bytes. Of the reservation, only the first
/// `dirty` bytes may hold anything but zeros: they were accessible to an earlier memory.
#[derive(Debug)]
struct Reservation {
    /// The whole mapping, as returned by `mmap`.
    mapping: NonNull<c_void>,
    mapping_len: usize,
    base: NonNull<u8>,
    reservation: usize,
    guard: usize,
    dirty: usize,
}

// SAFETY: the mapping is owned by this value alone; while a memory uses it, wasmtime serialises
// access to the store's memories, and while kept it is inaccessible.
unsafe impl Send for Reservation {}
unsafe impl Sync for Reservation {}

impl Reservation {
    /// A fresh mapping, all of it inaccessible.
    fn new(reservation: usize, guard: usize) -> rustix::io::Result<Self> {
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
        // Advice only: without it (or without THP in the kernel) memory works the same, in 4 KiB
        // pages. SAFETY: the range is part of our own mapping.
        let _ = unsafe { madvise(base.as_ptr().cast(), reservation, Advice::LinuxHugepage) };
        Ok(Self { mapping, mapping_len, base, reservation, guard, dirty: 0 })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours, and no memory uses it any more.
        let _ = unsafe { munmap(self.mapping.as_ptr(), self.mapping_len) };
    }
}

/// One linear memory: the first `size` bytes of its reservation are readable and writable, the
/// rest inaccessible. When the memory is dropped, its mapping is made inaccessible again and kept
/// for the creator's next memory, whose instance then finds nothing of this one's: every byte is
/// zeroed before it is exposed again. Reusing a mapping spares the next instance the kernel's
/// work for fresh memory (faults, allocating and zeroing pages, unmapping them afterwards), which
/// costs more than zeroing pages that are already there.
#[derive(Debug)]
struct HugePageMemory {
    /// Always `Some` until dropped.
    mapping: Option<Reservation>,
    size: usize,
    /// Whether exactly the first `size` bytes are accessible, so that the mapping can be kept.
    reusable: bool,
    kept: Arc<Mutex<Vec<Reservation>>>,
}

impl HugePageMemory {
    fn mapping(&self) -> &Reservation {
        self.mapping.as_ref().expect("a memory has its mapping until dropped")
    }

    /// Makes the first `new_size` bytes readable and writable, reading zero where they are new.
    fn make_accessible(&mut self, new_size: usize) -> rustix::io::Result<()> {
        let size = self.size;
        // The field, not `mapping()`: `reusable` is written while this borrow lives.
        let mapping = self.mapping.as_mut().expect("a memory has its mapping until dropped");
        if new_size > mapping.reservation {
            return Err(rustix::io::Errno::NOMEM);
        }
        // The kernel protects whole pages: a size between pages would expose the rest of its
        // last page. WebAssembly's 64 KiB pages never are; smaller custom page sizes are refused.
        if !new_size.is_multiple_of(rustix::param::page_size()) {
            return Err(rustix::io::Errno::INVAL);
        }
        if new_size > size {
            // SAFETY: `[size, new_size)` lies inside the reservation, which only this memory
            // uses, and was inaccessible until now, so no one else holds a reference into it.
            // Past `dirty` nothing has ever touched it, so it is zero; below, an earlier memory
            // may have written it, so it is cleared before the plugin can read it.
            unsafe {
                let grown = mapping.base.as_ptr().add(size);
                let opened = mprotect(
                    grown.cast(),
                    new_size - size,
                    MprotectFlags::READ | MprotectFlags::WRITE,
                );
                if opened.is_err() {
                    // The kernel may have opened part of the range, which the plugin could then
                    // write unseen: such a mapping is unmapped when done, never reused.
                    self.reusable = false;
                }
                opened?;
                clear(grown, mapping.dirty.min(new_size).saturating_sub(size));
            }
            self.size = new_size;
        }
        Ok(())
    }
}

/// Makes the `len` bytes at `start` read zero. Resident pages are cleared in place, which costs
/// less than handing them back and faulting fresh ones in; the others (never touched, or swapped
/// out) are discarded, since clearing them would first make the kernel allocate and zero them.
/// Infallible: where the kernel will not say or will not discard, the bytes are cleared in place.
///
/// # Safety
///
/// `start` is page-aligned, and the `len` bytes from it (a whole number of pages) are readable and
/// writable, part of one mapping, and referred to by nothing.
unsafe fn clear(start: *mut u8, len: usize) {
    let page = rustix::param::page_size();
    // Residency of up to 16 MiB (with 4 KiB pages) per `mincore` call.
    let mut resident = [0u8; 4096];
    let mut done = 0;
    while done < len {
        let chunk = (len - done).min(resident.len() * page);
        let pages = chunk / page;
        // SAFETY (all blocks below): every range lies inside the `len` bytes the caller vouches
        // for. `mincore` writes one byte per page of `chunk`, which `resident` holds.
        let chunk_start = unsafe { start.add(done) };
        let known = unsafe { libc::mincore(chunk_start.cast(), chunk, resident.as_mut_ptr()) } == 0;
        if !known {
            resident[..pages].fill(1);
        }
        let mut first = 0;
        while first < pages {
            let in_memory = resident[first] & 1;
            let run = resident[first..pages].iter().take_while(|r| *r & 1 == in_memory).count();
            let (run_start, run_len) = (unsafe { chunk_start.add(first * page) }, run * page);
            let discarded = in_memory == 0
                && unsafe { madvise(run_start.cast(), run_len, Advice::LinuxDontNeed) }.is_ok();
            if !discarded {
                unsafe { std::ptr::write_bytes(run_start, 0, run_len) };
            }
            first += run;
        }
        done += chunk;
    }
}

impl Drop for HugePageMemory {
    fn drop(&mut self) {
        // A mapping that is not kept is unmapped by its own drop.
        let Some(mut mapping) = self.mapping.take().filter(|_| self.reusable) else { return };
        mapping.dirty = mapping.dirty.max(self.size);
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let kept_bytes: usize = kept.iter().map(|r| r.dirty).sum();
        if kept.len() >= KEPT_MEMORIES || kept_bytes + mapping.dirty > KEPT_BYTES {
            return;
        }
        // SAFETY: wasmtime drops the memory after its last use, so nothing refers into it.
        let closed =
            unsafe { mprotect(mapping.base.as_ptr().cast(), self.size, MprotectFlags::empty()) };
        if closed.is_ok() {
            kept.push(mapping);
        }
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
        self.mapping().reservation
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        self.make_accessible(new_size).map_err(|e| {
            wasmtime::format_err!(
                "the plugin's linear memory cannot grow to {new_size} bytes (reserved {}): {e}",
                self.mapping().reservation
            )
        })
    }

    fn as_ptr(&self) -> *mut u8 {
        self.mapping().base.as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WASM_PAGE: usize = 64 << 10;

    fn new_memory(creator: &HugePageCreator, reservation: usize) -> Box<dyn LinearMemory> {
        let ty = MemoryType::new(1, None);
        creator.new_memory(ty, WASM_PAGE, None, Some(reservation), 1 << 20).unwrap()
    }

    /// The accessible bytes of `memory`.
    fn bytes(memory: &mut Box<dyn LinearMemory>) -> &mut [u8] {
        // SAFETY: `byte_size` bytes from the base are accessible, as the memory says, and the
        // borrow of `memory` keeps it alive and unchanged.
        unsafe { std::slice::from_raw_parts_mut(memory.as_ptr(), memory.byte_size()) }
    }

    #[test]
    fn memory_is_aligned_zeroed_and_grows_only_within_its_reservation() {
        let creator = HugePageCreator::default();
        let mut memory = new_memory(&creator, 64 << 20);
        assert_eq!(memory.as_ptr() as usize % HUGE_PAGE, 0, "base not on a huge page");
        assert_eq!((memory.byte_size(), memory.byte_capacity()), (WASM_PAGE, 64 << 20));

        let base = memory.as_ptr();
        memory.grow_to(3 * HUGE_PAGE + WASM_PAGE).unwrap();
        assert_eq!(memory.as_ptr(), base, "growing moved the base");
        let size = memory.byte_size();
        assert_eq!(size, 3 * HUGE_PAGE + WASM_PAGE);
        let bytes = bytes(&mut memory);
        assert!(bytes.iter().all(|b| *b == 0), "fresh memory is not zero");
        // The last byte is writable (a fault here would end the test process).
        bytes[size - 1] = 7;

        let error = memory.grow_to(size + 1).unwrap_err();
        assert!(error.to_string().contains("cannot grow"), "{error}");
        let error = memory.grow_to((64 << 20) + WASM_PAGE).unwrap_err();
        assert!(error.to_string().contains("cannot grow"), "{error}");
        assert_eq!(memory.byte_size(), size, "a refused growth changed the size");
    }

    #[test]
    fn a_reused_mapping_shows_the_next_memory_nothing_of_the_last() {
        let creator = HugePageCreator::default();
        let mut first = new_memory(&creator, 64 << 20);
        let base = first.as_ptr();
        first.grow_to(3 * HUGE_PAGE).unwrap();
        bytes(&mut first).fill(0xA5);
        // Pages it could reach but never touched are not resident: they are discarded, not
        // cleared, and must read zero all the same, around the one page touched among them.
        first.grow_to(5 * HUGE_PAGE).unwrap();
        bytes(&mut first)[4 * HUGE_PAGE + 5000] = 0xA5;
        drop(first);

        // The same mapping comes back, every byte it exposes cleared, whether it is exposed at
        // creation or by growing, a little at a time or past what the last memory used.
        let mut second = new_memory(&creator, 64 << 20);
        assert_eq!(second.as_ptr(), base, "the finished memory's mapping was not reused");
        assert_eq!(second.byte_size(), WASM_PAGE);
        for size in [WASM_PAGE * 3, HUGE_PAGE + WASM_PAGE, 4 * HUGE_PAGE, 6 * HUGE_PAGE] {
            second.grow_to(size).unwrap();
            assert!(bytes(&mut second).iter().all(|b| *b == 0), "stale bytes at size {size}");
        }

        // A memory asking for another layout gets a mapping of its own.
        let other = new_memory(&creator, 32 << 20);
        assert_ne!(other.as_ptr(), base);
        assert_eq!(other.byte_capacity(), 32 << 20);
    }

    #[test]
    fn only_a_bounded_amount_of_finished_memory_is_kept() {
        let creator = HugePageCreator::default();
        let mut memories: Vec<_> =
            (0..KEPT_MEMORIES + 1).map(|_| new_memory(&creator, 64 << 20)).collect();
        for memory in &mut memories {
            memory.grow_to(HUGE_PAGE).unwrap();
        }
        drop(memories);
        assert_eq!(creator.kept.lock().unwrap().len(), KEPT_MEMORIES);

        // A memory that grew past the byte bound is unmapped, not kept.
        let creator = HugePageCreator::default();
        let mut big = new_memory(&creator, 2 * KEPT_BYTES);
        big.grow_to(KEPT_BYTES + HUGE_PAGE).unwrap();
        drop(big);
        assert!(creator.kept.lock().unwrap().is_empty());
    }
}
