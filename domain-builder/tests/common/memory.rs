//! A fake guest memory for the build tests: pages in a map, pre-filled with garbage.

use std::collections::BTreeMap;

use domain_builder::{BuildError, GuestMemory};

/// Size of a page.
pub const PAGE: usize = 4096;

/// Guest memory as a map from pfn to page, pre-filled with garbage so that anything the
/// builder forgets to write shows up.
pub struct FakeMemory {
    pub frames: BTreeMap<u64, Box<[u8; PAGE]>>,
    pub fail_on: Option<u64>,
    /// Claim every frame is already zero (and count the `zero` calls made anyway).
    pub scrubbed: bool,
    pub zero_calls: u64,
}

impl FakeMemory {
    pub fn new(nr_pages: u64) -> Self {
        let frames = (0..nr_pages)
            .map(|pfn| (pfn, Box::new([0xa5u8; PAGE])))
            .collect();
        FakeMemory {
            frames,
            fail_on: None,
            scrubbed: false,
            zero_calls: 0,
        }
    }

    /// Memory whose frames are all zero and which says so, as a hypervisor's freshly
    /// scrubbed frames are.
    pub fn scrubbed(nr_pages: u64) -> Self {
        let frames = (0..nr_pages).map(|pfn| (pfn, Box::new([0u8; PAGE]))).collect();
        FakeMemory {
            frames,
            fail_on: None,
            scrubbed: true,
            zero_calls: 0,
        }
    }

    fn frame(&mut self, pfn: u64) -> Result<&mut [u8; PAGE], BuildError> {
        if self.fail_on == Some(pfn) {
            return Err(BuildError::GuestMemory { pfn });
        }
        self.frames
            .get_mut(&pfn)
            .map(|b| &mut **b)
            .ok_or(BuildError::GuestMemory { pfn })
    }
}

impl GuestMemory for FakeMemory {
    fn write(&mut self, pfn: u64, offset: usize, bytes: &[u8]) -> Result<(), BuildError> {
        assert!(offset + bytes.len() <= PAGE, "write crosses a page");
        self.frame(pfn)?[offset..offset + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    fn zero(&mut self, pfn: u64) -> Result<(), BuildError> {
        self.zero_calls += 1;
        self.frame(pfn)?.fill(0);
        Ok(())
    }

    fn frames_scrubbed(&self) -> bool {
        self.scrubbed
    }
}

/// A p2m that is neither the identity nor contiguous: reversed and spread out.
pub fn scrambled_p2m(nr_pages: u64) -> Vec<u64> {
    (0..nr_pages)
        .map(|pfn| 0x8_0000 + (nr_pages - 1 - pfn) * 3)
        .collect()
}
