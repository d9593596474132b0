//! Boot-time view of physical memory: the usable RAM from the loader's map minus everything
//! that must never be handed out (firmware areas below 1 MiB, the microkernel image, the boot
//! modules, the boot information). The frame allocator is built from the result.
#![forbid(unsafe_code)]

use super::{page_round_down, page_round_up};
use crate::multiboot::MemRegion;

/// Most disjoint free ranges tracked.
pub const MAX_RANGES: usize = 128;

/// Nothing below this address is ever handed out (real-mode IVT, BDA, EBDA, VGA, BIOS).
pub const LOW_MEMORY_END: u64 = 0x10_0000;

/// A half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Range {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// The free physical memory, as sorted, disjoint, page-aligned ranges.
#[derive(Clone, Debug, Default)]
pub struct FreeRanges {
    ranges: heapless::Vec<Range, MAX_RANGES>,
}

impl FreeRanges {
    /// Builds the free ranges: available regions of `map`, page-shrunk, minus low memory and
    /// every `reserved` range (page-grown).
    pub fn new(map: &[MemRegion], reserved: &[Range]) -> Self {
        let mut fr = FreeRanges::default();
        for r in map.iter().filter(|r| r.is_available()) {
            let start = page_round_up(r.base.max(LOW_MEMORY_END));
            let end = page_round_down(r.base.saturating_add(r.len));
            if start < end {
                fr.add(Range { start, end });
            }
        }
        // Reserved (non-available) regions that overlap available ones win: firmware may
        // report both.
        for r in map.iter().filter(|r| !r.is_available()) {
            fr.remove(Range { start: page_round_down(r.base), end: page_round_up(r.base.saturating_add(r.len)) });
        }
        for r in reserved {
            fr.remove(Range { start: page_round_down(r.start), end: page_round_up(r.end) });
        }
        fr
    }

    fn add(&mut self, r: Range) {
        // Insert sorted, merging overlaps.
        let mut merged = r;
        let mut out: heapless::Vec<Range, MAX_RANGES> = heapless::Vec::new();
        let mut placed = false;
        for &x in self.ranges.iter() {
            if x.end < merged.start {
                let _ = out.push(x);
            } else if merged.end < x.start {
                if !placed {
                    let _ = out.push(merged);
                    placed = true;
                }
                let _ = out.push(x);
            } else {
                merged = Range { start: x.start.min(merged.start), end: x.end.max(merged.end) };
            }
        }
        if !placed {
            let _ = out.push(merged);
        }
        self.ranges = out;
    }

    /// Removes `r` from the free ranges.
    pub fn remove(&mut self, r: Range) {
        if r.is_empty() {
            return;
        }
        let mut out: heapless::Vec<Range, MAX_RANGES> = heapless::Vec::new();
        for &x in self.ranges.iter() {
            if x.end <= r.start || r.end <= x.start {
                let _ = out.push(x);
                continue;
            }
            if x.start < r.start {
                let _ = out.push(Range { start: x.start, end: r.start });
            }
            if r.end < x.end {
                let _ = out.push(Range { start: r.end, end: x.end });
            }
        }
        self.ranges = out;
    }

    /// The ranges, sorted by address.
    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }

    /// Total free bytes.
    pub fn total(&self) -> u64 {
        self.ranges.iter().map(|r| r.len()).sum()
    }

    /// One past the highest free byte.
    pub fn top(&self) -> u64 {
        self.ranges.last().map(|r| r.end).unwrap_or(0)
    }

    /// Takes `len` bytes (page-rounded) from the lowest free range that holds them entirely
    /// below `limit`, and returns the start.
    pub fn carve(&mut self, len: u64, limit: u64) -> Option<u64> {
        let len = page_round_up(len);
        let found = self.ranges.iter().find(|r| r.len() >= len && r.start + len <= limit)?.start;
        self.remove(Range { start: found, end: found + len });
        Some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram(base: u64, len: u64) -> MemRegion {
        MemRegion { base, len, kind: 1 }
    }

    #[test]
    fn low_memory_image_and_modules_are_never_free() {
        let map = [ram(0, 0x9fc00), ram(0x10_0000, 0x0ff0_0000), MemRegion { base: 0x0ffe_0000, len: 0x2_0000, kind: 2 }];
        let fr = FreeRanges::new(
            &map,
            &[Range { start: 0x10_0000, end: 0x18_0123 }, Range { start: 0x20_0000, end: 0x20_0001 }],
        );
        assert_eq!(
            fr.ranges(),
            &[
                Range { start: 0x18_1000, end: 0x20_0000 },
                Range { start: 0x20_1000, end: 0x0ffe_0000 },
            ]
        );
        assert_eq!(fr.total(), (0x20_0000 - 0x18_1000) + (0x0ffe_0000 - 0x20_1000));
        assert_eq!(fr.top(), 0x0ffe_0000);
    }

    #[test]
    fn overlapping_and_unaligned_map_entries_are_merged_and_shrunk() {
        let map = [ram(0x10_0800, 0x1_0000), ram(0x10_8000, 0x1_0000), ram(0x5000_0000, 0x10)];
        let fr = FreeRanges::new(&map, &[]);
        assert_eq!(fr.ranges(), &[Range { start: 0x10_1000, end: 0x11_8000 }]);
    }

    #[test]
    fn carve_respects_the_limit_and_removes_what_it_gives() {
        let map = [ram(0x10_0000, 0x10_0000), ram(0x1_0000_0000, 0x100_0000)];
        let mut fr = FreeRanges::new(&map, &[]);
        assert_eq!(fr.carve(0x2_0000, 0x1_0000_0000), Some(0x10_0000));
        assert_eq!(fr.carve(0x1000, 0x1_0000_0000), Some(0x12_0000));
        // Too big for anything under the limit.
        assert_eq!(fr.carve(0x20_0000, 0x1_0000_0000), None);
        assert_eq!(fr.carve(0x20_0000, u64::MAX), Some(0x1_0000_0000));
        assert_eq!(fr.total(), 0x10_0000 - 0x2_1000 + 0x100_0000 - 0x20_0000);
    }

    #[test]
    fn hostile_map_entries_do_not_panic() {
        let map = [ram(u64::MAX - 10, 100), ram(0, u64::MAX), MemRegion { base: 5, len: 0, kind: 1 }];
        let fr = FreeRanges::new(&map, &[Range { start: 7, end: 3 }]);
        assert!(fr.total() > 0);
    }
}
