//! The guest heap (guest target only): a `linked_list_allocator` over a static 2 MiB array
//! in .bss. (Later the heap moves to memory taken from the domain's own pages.)

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, Ordering};

use linked_list_allocator::Heap;
use spin::Mutex;

/// Size of the static heap.
pub const HEAP_SIZE: usize = 2 * 1024 * 1024;

#[repr(C, align(4096))]
struct HeapSpace(UnsafeCell<[u8; HEAP_SIZE]>);

// SAFETY: the space is handed to the allocator once (guarded by `INITIALISED`) and only
// touched through it afterwards.
unsafe impl Sync for HeapSpace {}

static HEAP_SPACE: HeapSpace = HeapSpace(UnsafeCell::new([0; HEAP_SIZE]));
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

/// Hands the static space to the allocator (once; later calls do nothing).
pub(crate) fn init() {
    if INITIALISED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: the space is a static array used by nothing else, valid for the program's
    // lifetime, and given to the allocator exactly once (the swap above).
    unsafe {
        ALLOCATOR
            .0
            .lock()
            .init(HEAP_SPACE.0.get().cast(), HEAP_SIZE)
    }
}

/// `(used, free)` bytes of the heap.
pub fn usage() -> (usize, usize) {
    let heap = ALLOCATOR.0.lock();
    (heap.used(), heap.free())
}
