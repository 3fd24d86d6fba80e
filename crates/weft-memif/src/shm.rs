//! Memory shared with another process: a base pointer and a length, and
//! the only accessors the rings use. **All of the ring code's `unsafe` is
//! here.** Every access is bounds-checked against the length before the
//! pointer is touched, so a wrong offset read from shared memory is an
//! error, never a stray access; the other process may change any byte at
//! any time, so nothing here hands out a Rust reference to plain data —
//! bytes are copied in and out, and the ring indices are atomics.
#![allow(unsafe_code)]

use std::any::Any;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU16;

/// A region of shared memory.
pub struct Shm {
    ptr: NonNull<u8>,
    len: usize,
    // Keeps the mapping (or the heap block) alive as long as the view.
    _owner: Box<dyn Any + Send + Sync>,
}

// SAFETY: the memory is shared with another process already; all access
// goes through bounds-checked copies and atomics.
unsafe impl Send for Shm {}
// SAFETY: as above; no method hands out plain references.
unsafe impl Sync for Shm {}

impl Shm {
    /// A view of `len` bytes at `ptr`, kept valid by `owner`.
    ///
    /// # Safety
    /// `ptr..ptr+len` must stay mapped, readable and writable for as long
    /// as `owner` lives, and `ptr` must be 8-byte aligned.
    pub unsafe fn from_raw(ptr: NonNull<u8>, len: usize, owner: Box<dyn Any + Send + Sync>) -> Shm {
        Shm {
            ptr,
            len,
            _owner: owner,
        }
    }

    /// Zeroed heap memory (tests, the fuzz target).
    pub fn heap(len: usize) -> Shm {
        let words = len.div_ceil(8).max(1);
        let mut block: Box<[u64]> = vec![0u64; words].into_boxed_slice();
        let ptr = NonNull::new(block.as_mut_ptr() as *mut u8).unwrap_or(NonNull::dangling());
        Shm {
            ptr,
            len,
            _owner: Box::new(HeapBlock(block)),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, off: usize, n: usize) -> Option<usize> {
        let end = off.checked_add(n)?;
        (end <= self.len).then_some(off)
    }

    /// Copy `dst.len()` bytes from `off`; `None` if out of the region.
    pub fn read(&self, off: usize, dst: &mut [u8]) -> Option<()> {
        let off = self.check(off, dst.len())?;
        // SAFETY: off..off+len is inside the mapping (checked above); the
        // source may change concurrently, which only changes the bytes.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), dst.as_mut_ptr(), dst.len()) };
        Some(())
    }

    /// Copy `src` to `off`; `None` if out of the region.
    pub fn write(&self, off: usize, src: &[u8]) -> Option<()> {
        let off = self.check(off, src.len())?;
        // SAFETY: in bounds (checked above); writes go to shared memory
        // through a raw pointer, never through a Rust reference.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(off), src.len()) };
        Some(())
    }

    /// The 16-bit ring index at `off` (must be 2-aligned and in bounds).
    pub fn atomic_u16(&self, off: usize) -> Option<&AtomicU16> {
        let off = self.check(off, 2)?;
        if !off.is_multiple_of(2) {
            return None;
        }
        // SAFETY: in bounds and aligned (the base is 8-aligned); an atomic
        // may be changed by another process at any time, which is what it
        // is for.
        Some(unsafe { &*(self.ptr.as_ptr().add(off) as *const AtomicU16) })
    }
}

struct HeapBlock(#[allow(dead_code)] Box<[u64]>);
