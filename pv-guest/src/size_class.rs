//! The heap's small-block sizes (host-tested; the heap itself is guest-only): which free
//! list a layout's block comes from.

#![forbid(unsafe_code)]

use core::alloc::Layout;

/// The sizes kept in free lists: 16, 32, ... up to this.
pub const MAX_CACHED: usize = 2048;
/// How many sizes: 16 << 0 ..= 16 << 7.
pub const CLASSES: usize = 8;
/// The smallest block and every block's alignment.
pub const CLASS_ALIGN: usize = 16;

/// The size class of `layout` (its block size is `16 << class`), if it is a small one.
pub fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > CLASS_ALIGN || layout.size() > MAX_CACHED {
        return None;
    }
    let size = layout.size().max(CLASS_ALIGN).next_power_of_two();
    Some(size.trailing_zeros() as usize - CLASS_ALIGN.trailing_zeros() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_layouts_map_to_their_power_of_two() {
        let c = |size, align| class_of(Layout::from_size_align(size, align).unwrap());
        assert_eq!(c(1, 1), Some(0));
        assert_eq!(c(16, 8), Some(0));
        assert_eq!(c(17, 8), Some(1));
        assert_eq!(c(1500, 1), Some(7));
        assert_eq!(c(2048, 16), Some(7));
        assert_eq!(c(2049, 1), None);
        assert_eq!(c(64, 32), None, "alignment past 16 goes to the list allocator");
        // Every class's block size is what its layouts need.
        for size in 1..=MAX_CACHED {
            let k = c(size, 1).unwrap();
            assert!(k < CLASSES && CLASS_ALIGN << k >= size);
        }
    }
}
