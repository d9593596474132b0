//! The guest heap (guest target only): a `linked_list_allocator` over a static array in the
//! binary's .bss, 2 MiB unless the binary asks for more (`entry!(main, heap = BYTES)`;
//! dom0 does, for the store and the toolstack).
//!
//! Small blocks (up to [`MAX_CACHED`] bytes, alignment up to 16) are kept in per-size free
//! lists once freed, as a slab allocator does: the first-fit list allocator walks its free
//! list on every call, which a back end allocating for each frame or request would pay
//! each time. A size's list only ever holds blocks of that size; they are not given back to
//! the list allocator (a size's memory is bounded by the most of it ever in use at once).

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, Ordering};

use linked_list_allocator::Heap;
use spin::Mutex;

/// Size of the heap of a binary that does not choose one.
pub const DEFAULT_HEAP_SIZE: usize = 2 * 1024 * 1024;

/// The heap's memory: a page-aligned static array, defined in the binary by [`crate::entry!`].
#[repr(C, align(4096))]
pub struct HeapArea<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: the area is handed to the allocator once (guarded by `INITIALISED`) and only
// touched through it afterwards; `span` gives out its address, never a reference.
unsafe impl<const N: usize> Sync for HeapArea<N> {}

impl<const N: usize> HeapArea<N> {
    /// An all-zero area (placed in .bss).
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        HeapArea(UnsafeCell::new([0; N]))
    }

    /// Where the area is and how long.
    pub fn span(&'static self) -> HeapSpan {
        HeapSpan {
            start: self.0.get().cast(),
            len: N,
        }
    }
}

/// A heap area by address and length (what `__pv_guest_heap` returns).
#[derive(Clone, Copy)]
pub struct HeapSpan {
    start: *mut u8,
    len: usize,
}

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// The binary's heap area, and the memory added later by [`add_memory`] (one growing
/// range, for large buffers: dom0 unpacks kernels there). An allocation is tried in the
/// area first; a block is given back to the heap whose range holds it.
struct GuestHeap {
    area: Mutex<Heap>,
    added: Mutex<Heap>,
    /// Free blocks of each small size, as linked lists threaded through the blocks.
    cached: Mutex<[usize; CLASSES]>,
}

pub use crate::size_class::MAX_CACHED;
use crate::size_class::{class_of, CLASSES, CLASS_ALIGN};

impl GuestHeap {
    /// Whether `ptr` lies in the added range.
    fn in_added(&self, ptr: *mut u8) -> bool {
        let added = self.added.lock();
        added.size() > 0 && ptr >= added.bottom() && ptr < added.top()
    }
}

// SAFETY: allocation is delegated to `linked_list_allocator::Heap`s behind locks; each
// returns blocks that fit `layout` and do not overlap its live blocks (the two heaps' ranges
// are disjoint), or null when out of memory. A block is freed to the heap that gave it: the
// one whose range contains it.
unsafe impl GlobalAlloc for GuestHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let layout = match class_of(layout) {
            Some(c) => {
                let mut cached = self.cached.lock();
                let head = cached[c];
                if head != 0 {
                    // SAFETY: `head` is a free block of this class (pushed by `dealloc`), at
                    // least 16 bytes, 16-aligned; its first word holds the next free one.
                    cached[c] = unsafe { (head as *const usize).read() };
                    return head as *mut u8;
                }
                // A new block of the class's whole size, so it can serve the class later.
                Layout::from_size_align(CLASS_ALIGN << c, CLASS_ALIGN).unwrap_or(layout)
            }
            None => layout,
        };
        if let Ok(p) = self.area.lock().allocate_first_fit(layout) {
            return p.as_ptr();
        }
        self.added
            .lock()
            .allocate_first_fit(layout)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(c) = class_of(layout) {
            if !ptr.is_null() {
                let mut cached = self.cached.lock();
                // SAFETY: `ptr` is a block of this class (`alloc` gives every small layout a
                // block of its class's size, 16-aligned), no longer in use: its first word
                // now links it into the class's free list.
                unsafe { (ptr as *mut usize).write(cached[c]) };
                cached[c] = ptr as usize;
            }
            return;
        }
        let in_added = self.in_added(ptr);
        if let Some(ptr) = NonNull::new(ptr) {
            let heap = if in_added { &self.added } else { &self.area };
            // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc` with this `layout`,
            // from the heap whose range holds it.
            unsafe { heap.lock().deallocate(ptr, layout) }
        }
    }
}

#[global_allocator]
static ALLOCATOR: GuestHeap = GuestHeap {
    area: Mutex::new(Heap::empty()),
    added: Mutex::new(Heap::empty()),
    cached: Mutex::new([0; CLASSES]),
};

/// Where the added range ends (its next byte), 0 before the first [`add_memory`].
pub fn added_end() -> usize {
    let added = ALLOCATOR.added.lock();
    if added.size() == 0 {
        0
    } else {
        added.top() as usize
    }
}

/// Bytes of memory added by [`add_memory`].
pub fn added_size() -> usize {
    ALLOCATOR.added.lock().size()
}

/// Why memory could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddError {
    /// Not where the added range ends (it grows upwards only).
    NotContiguous,
    /// Too small or not page aligned.
    BadRange,
}

/// Adds `len` bytes at `start` to the heap: the first call starts the added range, later
/// ones must continue it ([`added_end`]).
///
/// # Safety
/// `[start, start + len)` must be memory mapped writable for the rest of the program, used
/// by nothing else and never given again.
pub unsafe fn add_memory(start: *mut u8, len: usize) -> Result<(), AddError> {
    if len < 4096 || !(start as usize).is_multiple_of(4096) || !len.is_multiple_of(4096) {
        return Err(AddError::BadRange);
    }
    let mut added = ALLOCATOR.added.lock();
    if added.size() == 0 {
        // SAFETY: the caller gives the range for good, mapped and unused.
        unsafe { added.init(start, len) };
    } else if added.top() == start {
        // SAFETY: as above; the range continues the heap's own.
        unsafe { added.extend(len) };
    } else {
        return Err(AddError::NotContiguous);
    }
    Ok(())
}

/// Hands the binary's heap area to the allocator (once; later calls do nothing).
pub(crate) fn init(area: HeapSpan) {
    if INITIALISED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: `area` comes from `HeapArea::span` of the binary's one static area (defined
    // by `entry!`), used by nothing else, valid for the program's lifetime, and given to
    // the allocator exactly once (the swap above).
    unsafe { ALLOCATOR.area.lock().init(area.start, area.len) }
}

/// Size of the binary's heap area in bytes (memory added later not counted).
pub fn size() -> usize {
    ALLOCATOR.area.lock().size()
}

/// `(used, free)` bytes of the binary's heap area (memory added later not counted).
pub fn usage() -> (usize, usize) {
    let heap = ALLOCATOR.area.lock();
    (heap.used(), heap.free())
}
