//! The guest heap (guest target only): a `linked_list_allocator` over a static array in the
//! binary's .bss, 2 MiB unless the binary asks for more (`entry!(main, heap = BYTES)`;
//! dom0 does, for the store and the toolstack).

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

struct GuestHeap(Mutex<Heap>);

// SAFETY: allocation is delegated to `linked_list_allocator::Heap` behind a lock; it returns
// blocks that fit `layout` and do not overlap live blocks, or null when out of memory.
unsafe impl GlobalAlloc for GuestHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc` with this `layout`.
            unsafe { self.0.lock().deallocate(ptr, layout) }
        }
    }
}

#[global_allocator]
static ALLOCATOR: GuestHeap = GuestHeap(Mutex::new(Heap::empty()));

/// Hands the binary's heap area to the allocator (once; later calls do nothing).
pub(crate) fn init(area: HeapSpan) {
    if INITIALISED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: `area` comes from `HeapArea::span` of the binary's one static area (defined
    // by `entry!`), used by nothing else, valid for the program's lifetime, and given to
    // the allocator exactly once (the swap above).
    unsafe { ALLOCATOR.0.lock().init(area.start, area.len) }
}

/// Size of the heap in bytes.
pub fn size() -> usize {
    ALLOCATOR.0.lock().size()
}

/// `(used, free)` bytes of the heap.
pub fn usage() -> (usize, usize) {
    let heap = ALLOCATOR.0.lock();
    (heap.used(), heap.free())
}
