//! Rule-by-rule tests of the grant logic over a fake shared table, hostile inputs included.
extern crate std;

use super::*;
use std::collections::BTreeMap;
use std::vec;

/// Words of every table and status frame; `meddle` rewrites a v1 entry's header just
/// before the next exchange on it (a granter changing its entry mid-map), `meddle_v2` a
/// v2 header between the hypervisor's two reads of it.
#[derive(Default)]
struct FakeEntries {
    w: BTreeMap<(u64, usize), u32>,
    meddle: Vec<(u64, usize, u32)>,
    meddle_v2: Vec<(u64, usize, u32)>,
    exchanges: u32,
}

impl FakeEntries {
    fn insert_v1(&mut self, frame: u64, slot: usize, header: u32, f: u32) {
        self.w.insert((frame, slot * 8), header);
        self.w.insert((frame, slot * 8 + 4), f);
    }
    fn read_v1(&mut self, frame: u64, slot: usize) -> (u32, u32) {
        (self.read32(frame, slot * 8), self.read32(frame, slot * 8 + 4))
    }
}

impl EntryMemory for FakeEntries {
    fn read32(&mut self, frame: u64, off: usize) -> u32 {
        assert!(off % 4 == 0 && off < 4096);
        let v = *self.w.get(&(frame, off)).unwrap_or(&0);
        // A v2 granter rewriting its header after the hypervisor's first read.
        if let Some(i) = self.meddle_v2.iter().position(|m| (m.0, m.1) == (frame, off)) {
            let (_, _, h) = self.meddle_v2.remove(i);
            self.w.insert((frame, off), h);
        }
        v
    }
    fn read64(&mut self, frame: u64, off: usize) -> u64 {
        assert!(off % 8 == 0);
        u64::from(self.read32(frame, off)) | u64::from(self.read32(frame, off + 4)) << 32
    }
    fn cmpxchg32(&mut self, frame: u64, off: usize, old: u32, new: u32) -> u32 {
        self.exchanges += 1;
        if let Some(i) = self.meddle.iter().position(|m| (m.0, m.1 * 8) == (frame, off)) {
            let (_, _, h) = self.meddle.remove(i);
            self.w.insert((frame, off), h);
        }
        let cur = self.w.entry((frame, off)).or_default();
        let seen = *cur;
        if seen == old {
            *cur = new;
        }
        seen
    }
    fn and32(&mut self, frame: u64, off: usize, mask: u32) {
        *self.w.entry((frame, off)).or_default() &= mask;
    }
    fn or32(&mut self, frame: u64, off: usize, bits: u32) {
        *self.w.entry((frame, off)).or_default() |= bits;
    }
    fn write32(&mut self, frame: u64, off: usize, v: u32) {
        if v == 0 {
            self.w.remove(&(frame, off));
        } else {
            self.w.insert((frame, off), v);
        }
    }
}

const GRANTER: u16 = 1;
const MAPPER: u16 = 2;
const OTHER: u16 = 3;

struct World {
    g: Grants,
    mem: FakeEntries,
    next_frame: u64,
}

impl World {
    fn new() -> Self {
        let mut g = Grants::new();
        for d in [GRANTER, MAPPER, OTHER] {
            g.add_domain(d, Limits::default());
        }
        let mut w = World { g, mem: FakeEntries::default(), next_frame: 0x1000 };
        w.setup(GRANTER, 1);
        w
    }
    fn setup(&mut self, d: u16, n: u32) -> Vec<u64> {
        let mut next = self.next_frame;
        let r = self.g.setup_table(d, n, &mut || {
            next += 1;
            Some(next)
        });
        self.next_frame = next;
        r.unwrap().to_vec()
    }
    /// The granter writes entry `gref`.
    fn grant(&mut self, gref: u32, flags: u16, domid: u16, frame: u32) {
        let t = self.g.table(GRANTER).unwrap().frames().to_vec();
        let f = t[(gref / ENTRIES_PER_FRAME) as usize];
        self.mem.insert_v1(f, (gref % ENTRIES_PER_FRAME) as usize, header(flags, domid), frame);
    }
    fn flags(&mut self, gref: u32) -> u16 {
        let f = self.g.table(GRANTER).unwrap().frames()[(gref / ENTRIES_PER_FRAME) as usize];
        header_flags(self.mem.read_v1(f, (gref % ENTRIES_PER_FRAME) as usize).0)
    }
    fn map(&mut self, gref: u32, flags: u32) -> Result<MapGrant, Status> {
        self.map_from(GRANTER, gref, flags)
    }
    fn map_from(&mut self, granter: u16, gref: u32, flags: u32) -> Result<MapGrant, Status> {
        self.g.map_acquire(&mut self.mem, MAPPER, MapRequest { flags, gref, granter, host_addr: 0x4000_0000 })
    }
}

const RW: u32 = GNTMAP_HOST_MAP;
const RO: u32 = GNTMAP_HOST_MAP | GNTMAP_READONLY;

#[test]
fn limits_default_to_xens_and_are_configurable() {
    let d = Limits::default();
    assert_eq!((d.max_grant_frames, d.max_maptrack_frames, d.max_entries()), (64, 64, 32768));
    assert_eq!(Limits::from_request(0, 0), Some(d));
    assert_eq!(Limits::from_request(4, 1), Some(Limits { max_grant_frames: 4, max_maptrack_frames: 1 }));
    assert_eq!(Limits::from_request(MAX_GRANT_FRAMES_LIMIT + 1, 0), None);
    assert_eq!(Limits::from_request(0, MAX_MAPTRACK_FRAMES_LIMIT + 1), None);
}

#[test]
fn setup_grows_to_the_limit_and_no_further() {
    let mut w = World::new();
    assert_eq!(w.g.query_size(GRANTER), Ok((1, 64)));
    let f = w.setup(GRANTER, 3);
    assert_eq!(f.len(), 3);
    assert_eq!(w.setup(GRANTER, 2), f, "never shrinks");
    assert_eq!(w.g.setup_table(GRANTER, 65, &mut || Some(1)), Err(GNTST_GENERAL_ERROR));
    assert_eq!(w.g.query_size(GRANTER), Ok((3, 64)));
    assert_eq!(w.g.setup_table(9, 1, &mut || Some(1)), Err(GNTST_BAD_DOMAIN));
    assert_eq!(w.g.query_size(9), Err(GNTST_BAD_DOMAIN));
    // Out of frames: what was added stays.
    assert_eq!(w.g.setup_table(GRANTER, 10, &mut || None), Err(GNTST_GENERAL_ERROR));
    let mut small = Grants::new();
    small.add_domain(5, Limits::from_request(2, 0).unwrap());
    assert_eq!(small.query_size(5), Ok((0, 2)));
    assert_eq!(small.setup_table(5, 3, &mut || Some(7)), Err(GNTST_GENERAL_ERROR));
}

#[test]
fn map_sets_in_use_flags_and_unmap_clears_them() {
    let mut w = World::new();
    w.grant(8, GTF_PERMIT_ACCESS, MAPPER, 0x777);
    let m = w.map(8, RW).unwrap();
    assert_eq!((m.frame, m.readonly), (0x777, false));
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    let r = w.map(8, RO).unwrap();
    assert_ne!(r.handle, m.handle);
    assert_eq!(w.g.table(GRANTER).unwrap().pins(8), (1, 1));
    w.g.unmap_release(&mut w.mem, MAPPER, m.handle).unwrap();
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS | GTF_READING, "writing clears with the last write pin");
    w.g.unmap_release(&mut w.mem, MAPPER, r.handle).unwrap();
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS, "reading clears with the last pin");
    assert_eq!(w.g.maptrack(MAPPER).unwrap().in_use(), 0);
}

#[test]
fn map_checks_come_in_xens_order() {
    let mut w = World::new();
    w.grant(8, GTF_PERMIT_ACCESS | GTF_READONLY, MAPPER, 0x777);
    w.grant(9, GTF_PERMIT_ACCESS, OTHER, 0x778);
    w.grant(10, GTF_INVALID, MAPPER, 0x779);
    w.grant(11, GTF_ACCEPT_TRANSFER, MAPPER, 0x77a);
    w.grant(12, GTF_PERMIT_ACCESS | GTF_SUB_PAGE, MAPPER, 0x77b);
    // Neither host nor device map.
    assert_eq!(w.map(8, GNTMAP_READONLY), Err(GNTST_BAD_GNTREF));
    assert_eq!(w.map(8, RO | GNTMAP_CONTAINS_PTE), Err(GNTST_GENERAL_ERROR));
    assert_eq!(w.map_from(42, 8, RO), Err(GNTST_BAD_DOMAIN));
    // Out of range: past the frames set up, and far past.
    assert_eq!(w.map(ENTRIES_PER_FRAME, RO), Err(GNTST_BAD_GNTREF));
    assert_eq!(w.map(u32::MAX, RO), Err(GNTST_BAD_GNTREF));
    // A read-only grant mapped writable.
    assert_eq!(w.map(8, RW), Err(GNTST_GENERAL_ERROR));
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS | GTF_READONLY, "a refused map leaves no flag");
    // Granted to someone else; not a grant; a transfer; a sub-page grant mapped.
    for gref in [9, 10, 11, 12] {
        assert_eq!(w.map(gref, RO), Err(GNTST_GENERAL_ERROR), "gref {gref}");
    }
    // A domain other than the mapper may not map the mapper's grant either.
    let r = w.g.map_acquire(&mut w.mem, OTHER, MapRequest { flags: RO, gref: 8, granter: GRANTER, host_addr: 0 });
    assert_eq!(r, Err(GNTST_GENERAL_ERROR));
    assert_eq!(w.g.maptrack(MAPPER).unwrap().in_use(), 0, "no handle leaked by refusals");
    assert!(w.map(8, RO).is_ok());
}

#[test]
fn pinned_entry_serves_its_domain_only_and_bounds_pins() {
    let mut w = World::new();
    w.grant(8, GTF_PERMIT_ACCESS, MAPPER, 0x777);
    w.map(8, RO).unwrap();
    // The granter re-grants the entry to OTHER while it is mapped: OTHER is refused
    // (pinned for MAPPER), and MAPPER's further read-only maps use the pinned frame.
    w.grant(8, GTF_PERMIT_ACCESS | GTF_READING, OTHER, 0x999);
    let r = w.g.map_acquire(&mut w.mem, OTHER, MapRequest { flags: RO, gref: 8, granter: GRANTER, host_addr: 0 });
    assert_eq!(r, Err(GNTST_GENERAL_ERROR));
    assert_eq!(w.map(8, RO).unwrap().frame, 0x777);
    // A first write pin checks the entry again: now granted to OTHER, refused.
    assert_eq!(w.map(8, RW), Err(GNTST_GENERAL_ERROR));
    for _ in 2..MAX_PINS {
        w.map(8, RO).unwrap();
    }
    assert_eq!(w.map(8, RO), Err(GNTST_GENERAL_ERROR), "pin counter overflow refused");
}

#[test]
fn granter_changing_its_entry_mid_map() {
    let mut w = World::new();
    w.grant(8, GTF_PERMIT_ACCESS, MAPPER, 0x777);
    let f = w.g.table(GRANTER).unwrap().frames()[0];
    // The granter makes it read-only between our read and our exchange: the retry sees it
    // and refuses the writable map.
    w.mem.meddle.push((f, 8, header(GTF_PERMIT_ACCESS | GTF_READONLY, MAPPER)));
    assert_eq!(w.map(8, RW), Err(GNTST_GENERAL_ERROR));
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS | GTF_READONLY);
    // A benign change (a cache bit) is retried and the map succeeds.
    w.grant(8, GTF_PERMIT_ACCESS, MAPPER, 0x777);
    w.mem.meddle.push((f, 8, header(GTF_PERMIT_ACCESS | GTF_PWT, MAPPER)));
    w.map(8, RW).unwrap();
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS | GTF_PWT | GTF_READING | GTF_WRITING);
    // A granter rewriting it every time: bounded retries, then general error.
    w.grant(9, GTF_PERMIT_ACCESS, MAPPER, 0x777);
    for i in 0..=MAX_ENTRY_RETRIES {
        w.mem.meddle.push((f, 9, header(GTF_PERMIT_ACCESS | (((i as u16 + 1) & 1) << 5), MAPPER)));
    }
    w.mem.exchanges = 0;
    // Each exchange consumes one meddle: alternate so every exchange fails.
    assert_eq!(w.map(9, RO), Err(GNTST_GENERAL_ERROR));
    assert_eq!(w.mem.exchanges, MAX_ENTRY_RETRIES + 1);
}

#[test]
fn unmap_must_name_the_address_it_was_mapped_at() {
    // XSA-224 class: an unmap with host_addr 0, or through another address, must neither
    // free the handle nor drop the pin; the mapping stays whole until a real unmap.
    let mut w = World::new();
    w.grant(8, GTF_PERMIT_ACCESS, MAPPER, 0x777);
    let m = w.map(8, RW).unwrap();
    for (host, dev, want) in [
        (0, 0, GNTST_GENERAL_ERROR),
        (0x4000_1000, 0, GNTST_GENERAL_ERROR),
        // A host-only mapping has no device half: a bus address names nothing.
        (0, 0x777 << 12, GNTST_GENERAL_ERROR),
    ] {
        assert_eq!(w.g.unmap_target(MAPPER, m.handle, host, dev).map(|_| ()), Err(want), "{host:#x} {dev:#x}");
        assert_eq!(w.flags(8), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING, "pin kept");
        assert_eq!(w.g.maptrack(MAPPER).unwrap().in_use(), 1, "handle kept");
    }
    assert_eq!(w.g.unmap_target(OTHER, m.handle, 0x4000_0000, 0).map(|_| ()), Err(GNTST_BAD_HANDLE));
    let t = w.g.unmap_target(MAPPER, m.handle, 0x4000_0000, 0x777 << 12).unwrap();
    assert_eq!(t.mapping.frame, 0x777);
    w.g.unmap_release(&mut w.mem, MAPPER, m.handle).unwrap();
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS);
}

#[test]
fn unmap_bad_and_double_handles() {
    let mut w = World::new();
    w.grant(8, GTF_PERMIT_ACCESS, MAPPER, 0x777);
    assert_eq!(w.g.unmap_release(&mut w.mem, MAPPER, 0), Err(GNTST_BAD_HANDLE));
    assert_eq!(w.g.unmap_release(&mut w.mem, MAPPER, u32::MAX), Err(GNTST_BAD_HANDLE));
    let m = w.map(8, RW).unwrap();
    assert_eq!(w.g.mapping(OTHER, m.handle), Err(GNTST_BAD_HANDLE), "handles are per mapper");
    assert_eq!(w.g.mapping(MAPPER, m.handle).unwrap().frame, 0x777);
    w.g.unmap_release(&mut w.mem, MAPPER, m.handle).unwrap();
    assert_eq!(w.g.unmap_release(&mut w.mem, MAPPER, m.handle), Err(GNTST_BAD_HANDLE));
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS);
    assert_eq!(w.g.table(GRANTER).unwrap().pins(8), (0, 0));
}

#[test]
fn map_abort_undoes_everything() {
    let mut w = World::new();
    w.grant(8, GTF_PERMIT_ACCESS, MAPPER, 0x777);
    let m = w.map(8, RW).unwrap();
    w.g.map_abort(&mut w.mem, MAPPER, m.handle);
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS);
    assert_eq!(w.g.maptrack(MAPPER).unwrap().in_use(), 0);
}

#[test]
fn maptrack_limit_gives_no_space() {
    let mut g = Grants::new();
    g.add_domain(GRANTER, Limits::default());
    g.add_domain(MAPPER, Limits::from_request(0, 1).unwrap());
    let mut mem = FakeEntries::default();
    let f = g.setup_table(GRANTER, 1, &mut || Some(0x50)).unwrap()[0];
    for r in 0..2u32 {
        mem.insert_v1(f, r as usize, header(GTF_PERMIT_ACCESS, MAPPER), 0x700 + r);
    }
    let req = |gref| MapRequest { flags: RO, gref, granter: GRANTER, host_addr: 0 };
    let mut handles = vec![];
    for _ in 0..MAPTRACK_PER_FRAME / 2 {
        handles.push(g.map_acquire(&mut mem, MAPPER, req(0)).unwrap().handle);
        handles.push(g.map_acquire(&mut mem, MAPPER, req(1)).unwrap().handle);
        if handles.len() >= MAX_PINS as usize * 2 - 2 {
            break;
        }
    }
    // Pins are bounded per entry before handles run out with 2 entries; use more entries.
    for r in 2..ENTRIES_PER_FRAME {
        mem.insert_v1(f, r as usize, header(GTF_PERMIT_ACCESS, MAPPER), 0x700 + r);
    }
    let mut r = 2;
    while handles.len() < MAPTRACK_PER_FRAME as usize {
        handles.push(g.map_acquire(&mut mem, MAPPER, req(r)).unwrap().handle);
        r += 1;
    }
    assert_eq!(g.map_acquire(&mut mem, MAPPER, req(r)), Err(GNTST_NO_SPACE));
    g.unmap_release(&mut mem, MAPPER, handles[5]).unwrap();
    assert_eq!(g.map_acquire(&mut mem, MAPPER, req(r)).unwrap().handle, handles[5], "freed handle reused");
}

#[test]
fn copy_pins_for_the_copy_only() {
    let mut w = World::new();
    w.grant(8, GTF_PERMIT_ACCESS | GTF_READONLY, MAPPER, 0x777);
    w.grant(9, GTF_PERMIT_ACCESS, MAPPER, 0x778);
    assert_eq!(w.g.copy_acquire(&mut w.mem, MAPPER, GRANTER, 8, false), Ok(Pinned { frame: 0x777, start: 0, length: 4096 }));
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS | GTF_READONLY | GTF_READING);
    w.g.copy_release(&mut w.mem, GRANTER, 8, false);
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS | GTF_READONLY);
    assert_eq!(w.g.copy_acquire(&mut w.mem, MAPPER, GRANTER, 8, true), Err(GNTST_GENERAL_ERROR), "read-only as destination");
    assert_eq!(w.g.copy_acquire(&mut w.mem, OTHER, GRANTER, 9, true), Err(GNTST_GENERAL_ERROR), "granted to another");
    assert_eq!(w.g.copy_acquire(&mut w.mem, MAPPER, 42, 9, true), Err(GNTST_BAD_DOMAIN));
    assert_eq!(w.g.copy_acquire(&mut w.mem, MAPPER, GRANTER, 4096, true), Err(GNTST_BAD_GNTREF));
    assert_eq!(w.g.copy_acquire(&mut w.mem, MAPPER, GRANTER, 9, true), Ok(Pinned { frame: 0x778, start: 0, length: 4096 }));
    w.g.copy_release(&mut w.mem, GRANTER, 9, true);
    assert_eq!(w.flags(9), GTF_PERMIT_ACCESS);
    // A sub-page flag does not stop a copy (v1 ignores it there, as Xen).
    w.grant(12, GTF_PERMIT_ACCESS | GTF_SUB_PAGE, MAPPER, 0x77b);
    assert!(w.g.copy_acquire(&mut w.mem, MAPPER, GRANTER, 12, false).is_ok());
}

#[test]
fn loopback_grant_to_self() {
    let mut w = World::new();
    w.grant(8, GTF_PERMIT_ACCESS, GRANTER, 0x777);
    let m = w.g.map_acquire(&mut w.mem, GRANTER, MapRequest { flags: RW, gref: 8, granter: GRANTER, host_addr: 0 }).unwrap();
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    w.g.unmap_release(&mut w.mem, GRANTER, m.handle).unwrap();
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS);
}

#[test]
fn mapper_death_releases_its_pins() {
    let mut w = World::new();
    w.grant(8, GTF_PERMIT_ACCESS, MAPPER, 0x777);
    w.grant(9, GTF_PERMIT_ACCESS, MAPPER, 0x778);
    w.map(8, RW).unwrap();
    w.map(9, RO).unwrap();
    let r = w.g.remove_domain(&mut w.mem, MAPPER);
    assert_eq!((r.mappings_released, r.mappings_orphaned), (2, 0));
    assert_eq!((w.flags(8), w.flags(9)), (GTF_PERMIT_ACCESS, GTF_PERMIT_ACCESS));
    assert_eq!(w.g.table(GRANTER).unwrap().pinned_entries(), 0);
    assert!(!w.g.has_domain(MAPPER));
    assert_eq!(w.map(8, RO), Err(GNTST_BAD_DOMAIN), "mapper gone");
}

#[test]
fn granter_death_orphans_mappings_which_still_unmap() {
    let mut w = World::new();
    w.grant(8, GTF_PERMIT_ACCESS, MAPPER, 0x777);
    let m = w.map(8, RW).unwrap();
    let frames = w.g.table(GRANTER).unwrap().frames().to_vec();
    let r = w.g.remove_domain(&mut w.mem, GRANTER);
    assert_eq!(r.table_frames, frames);
    assert_eq!((r.mappings_released, r.mappings_orphaned), (0, 1));
    let before = w.mem.w.clone();
    let gone = w.g.unmap_release(&mut w.mem, MAPPER, m.handle).unwrap();
    assert!(gone.orphan);
    assert_eq!(w.mem.w, before, "an orphan unmap writes no table");
    assert_eq!(w.g.unmap_release(&mut w.mem, MAPPER, m.handle), Err(GNTST_BAD_HANDLE));
    assert_eq!(w.map(8, RO), Err(GNTST_BAD_DOMAIN));
    // A new domain with the same id has a fresh table.
    w.g.add_domain(GRANTER, Limits::default());
    assert_eq!(w.g.query_size(GRANTER), Ok((0, 64)));
}

#[test]
fn copy_between_two_granters_pins_both_then_neither() {
    let mut w = World::new();
    w.setup(OTHER, 1);
    w.grant(8, GTF_PERMIT_ACCESS | GTF_READONLY, MAPPER, 0x777);
    let of = w.g.table(OTHER).unwrap().frames()[0];
    w.mem.insert_v1(of, 8, header(GTF_PERMIT_ACCESS, MAPPER), 0x888);
    let src = w.g.copy_acquire(&mut w.mem, MAPPER, GRANTER, 8, false).unwrap();
    let dst = w.g.copy_acquire(&mut w.mem, MAPPER, OTHER, 8, true).unwrap();
    assert_eq!((src.frame, dst.frame), (0x777, 0x888));
    assert_eq!(header_flags(w.mem.read_v1(of, 8).0), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    // Released in either order, each side's flags go back.
    w.g.copy_release(&mut w.mem, OTHER, 8, true);
    w.g.copy_release(&mut w.mem, GRANTER, 8, false);
    assert_eq!(header_flags(w.mem.read_v1(of, 8).0), GTF_PERMIT_ACCESS);
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS | GTF_READONLY);
    assert_eq!(w.g.table(GRANTER).unwrap().pinned_entries() + w.g.table(OTHER).unwrap().pinned_entries(), 0);
    // A copy pin on an entry mapped by the same domain stacks on the map's pin.
    w.grant(9, GTF_PERMIT_ACCESS, MAPPER, 0x999);
    let m = w.map(9, RW).unwrap();
    w.g.copy_acquire(&mut w.mem, MAPPER, GRANTER, 9, false).unwrap();
    w.g.copy_release(&mut w.mem, GRANTER, 9, false);
    assert_eq!(w.flags(9), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING, "still mapped");
    w.g.unmap_release(&mut w.mem, MAPPER, m.handle).unwrap();
    assert_eq!(w.flags(9), GTF_PERMIT_ACCESS);
}

/// Frames for copies: owners, frames that refuse the writable type, references held.
#[derive(Default)]
struct FakeFrames {
    owner: BTreeMap<u64, u16>,
    no_write: Vec<u64>,
    refs: BTreeMap<u64, (u32, u32)>,
    copies: Vec<(u64, u64)>,
}

impl CopyFrames for FakeFrames {
    fn claim(&mut self, frame: u64, owner: u16, write: bool) -> Result<(), Status> {
        if self.owner.get(&frame) != Some(&owner) || (write && self.no_write.contains(&frame)) {
            return Err(GNTST_BAD_PAGE);
        }
        let r = self.refs.entry(frame).or_default();
        r.0 += 1;
        r.1 += u32::from(write);
        Ok(())
    }
    fn release(&mut self, frame: u64, write: bool) {
        let r = self.refs.get_mut(&frame).expect("released a frame never claimed");
        r.0 -= 1;
        r.1 -= u32::from(write);
    }
    fn copy(&mut self, dst: u64, _: usize, src: u64, _: usize, _: usize) {
        self.copies.push((src, dst));
    }
}

impl FakeFrames {
    fn held(&self) -> u32 {
        self.refs.values().map(|r| r.0 + r.1).sum()
    }
}

/// A world for copies: granter's refs 1 (read-only, frame 0x701), 2 (0x702), 3 (0x703),
/// OTHER's ref 1 (0x801); MAPPER's own frames 0x901..0x904, 0x904 refusing the writable
/// type.
fn copy_world() -> (World, FakeFrames) {
    let mut w = World::new();
    w.setup(OTHER, 1);
    w.grant(1, GTF_PERMIT_ACCESS | GTF_READONLY, MAPPER, 0x701);
    w.grant(2, GTF_PERMIT_ACCESS, MAPPER, 0x702);
    w.grant(3, GTF_PERMIT_ACCESS, MAPPER, 0x703);
    let of = w.g.table(OTHER).unwrap().frames()[0];
    w.mem.insert_v1(of, 1, header(GTF_PERMIT_ACCESS, MAPPER), 0x801);
    let mut f = FakeFrames::default();
    for fr in [0x701, 0x702, 0x703] {
        f.owner.insert(fr, GRANTER);
    }
    f.owner.insert(0x801, OTHER);
    for fr in 0x901..=0x904 {
        f.owner.insert(fr, MAPPER);
    }
    f.no_write.push(0x904);
    (w, f)
}

fn gref(dom: u16, gref: u64) -> CopySide {
    CopySide::Gref { dom, gref }
}

fn local(frame: u64) -> CopySide {
    CopySide::Frame { dom: MAPPER, frame }
}

fn no_pins(w: &World) -> bool {
    w.g.table(GRANTER).unwrap().pinned_entries() + w.g.table(OTHER).unwrap().pinned_entries() == 0
}

#[test]
fn held_copy_sides_give_every_op_its_own_status() {
    let ops = [
        (gref(GRANTER, 1), local(0x901)),
        (gref(GRANTER, 1), local(0x902)),
        (gref(GRANTER, 1), gref(GRANTER, 1)), // read-only ref as destination
        (gref(GRANTER, 1), local(0x904)),     // destination refuses the writable type
        (gref(GRANTER, 1), local(0x902)),
        (gref(OTHER, 1), local(0x903)),        // another granter
        (gref(GRANTER, 1 << 32), local(0x901)), // reference past u32
        (gref(GRANTER, 4096), local(0x901)),  // past the table
        (gref(42, 2), local(0x901)),          // unknown granter
        (local(0x701), local(0x901)),         // the granter's frame named as ours
        (gref(GRANTER, 2), gref(GRANTER, 2)), // one entry as both sides
        (gref(GRANTER, 2), gref(OTHER, 1)),
        (gref(GRANTER, 3), gref(OTHER, 1)),
        (local(0x901), gref(GRANTER, 3)),
    ];
    // Each op alone, everything given back after it: the statuses to match.
    let (mut w, mut f) = copy_world();
    let alone: Vec<_> = ops
        .iter()
        .map(|&(s, d)| {
            let mut b = CopyBatch::new();
            let mut g = CopyGrants { grants: &mut w.g, mem: &mut w.mem, caller: MAPPER };
            let r = b.copy(&mut g, &mut f, s, 0, d, 0, 8);
            b.finish(&mut g, &mut f);
            r
        })
        .collect();
    assert!(no_pins(&w) && f.held() == 0);
    assert_eq!(alone.iter().filter(|r| r.is_err()).count(), 6, "{alone:?}");
    let copies_alone = f.copies.clone();
    // The same ops in one batch.
    let (mut w, mut f) = copy_world();
    let mut b = CopyBatch::new();
    let mut g = CopyGrants { grants: &mut w.g, mem: &mut w.mem, caller: MAPPER };
    let batched: Vec<_> = ops.iter().map(|&(s, d)| b.copy(&mut g, &mut f, s, 0, d, 0, 8)).collect();
    assert_eq!(batched, alone);
    assert_eq!(f.copies, copies_alone);
    assert!(b.holds_any());
    b.finish(&mut g, &mut f);
    assert!(!b.holds_any());
    assert!(no_pins(&w) && f.held() == 0, "everything given back");
    for r in 1..=3 {
        assert_eq!(w.flags(r) & (GTF_READING | GTF_WRITING), 0, "ref {r}");
    }
}

#[test]
fn a_held_side_is_pinned_once_and_kept_only_while_named() {
    let (mut w, mut f) = copy_world();
    let mut b = CopyBatch::new();
    let mut g = CopyGrants { grants: &mut w.g, mem: &mut w.mem, caller: MAPPER };
    for d in [0x901, 0x902, 0x903] {
        b.copy(&mut g, &mut f, gref(GRANTER, 2), 0, local(d), 0, 8).unwrap();
    }
    assert_eq!(g.grants.table(GRANTER).unwrap().pins(2), (1, 0), "one read pin for the three copies");
    assert_eq!(f.refs[&0x702], (1, 0));
    assert_eq!((f.refs[&0x901], f.refs[&0x902], f.refs[&0x903]), ((0, 0), (0, 0), (1, 1)), "only the last destination held");
    // A failing op leaves what was held before it, and takes nothing.
    assert_eq!(b.copy(&mut g, &mut f, gref(GRANTER, 2), 0, local(0x904), 0, 8), Err(GNTST_BAD_PAGE));
    assert_eq!(g.grants.table(GRANTER).unwrap().pins(2), (1, 0));
    assert_eq!(f.held(), 1, "the source's reference only (the old destination went when not named)");
    // A new source pin that fails at its frame gives its pin back.
    f.owner.insert(0x703, OTHER);
    assert_eq!(b.copy(&mut g, &mut f, gref(GRANTER, 3), 0, local(0x901), 0, 8), Err(GNTST_BAD_PAGE));
    assert_eq!(g.grants.table(GRANTER).unwrap().pins(3), (0, 0));
    b.finish(&mut g, &mut f);
    assert!(no_pins(&w) && f.held() == 0);
    assert_eq!(w.flags(2), GTF_PERMIT_ACCESS);
}

/// Random maps, unmaps, grant changes and domain deaths, hostile references among them:
/// after every step [`Grants::audit`] holds (pins are exactly the mappings), and at the
/// end, with every mapping gone, nothing is pinned.
#[test]
fn random_maps_and_unmaps_keep_pins_equal_to_mappings() {
    let mut w = World::new();
    w.setup(OTHER, 1);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut handles: Vec<(u16, u32)> = Vec::new();
    let mut mapped = 0;
    for step in 0..20_000 {
        match next(10) {
            0..=2 => {
                let gref = next(12) as u32;
                let flags = [GTF_PERMIT_ACCESS, GTF_PERMIT_ACCESS | GTF_READONLY, 0][next(3) as usize];
                let domid = [MAPPER, OTHER, 77][next(3) as usize];
                w.grant(gref, flags, domid, 0x700 + gref);
            }
            3..=6 => {
                let mapper = [MAPPER, OTHER][next(2) as usize];
                let flags = [RW, RO][next(2) as usize];
                let req = MapRequest { flags, gref: next(14) as u32, granter: [GRANTER, OTHER, 9][next(3) as usize], host_addr: 0x4000_0000 };
                if let Ok(m) = w.g.map_acquire(&mut w.mem, mapper, req) {
                    handles.push((mapper, m.handle));
                    mapped += 1;
                }
            }
            7 | 8 if !handles.is_empty() => {
                let (mapper, h) = handles.swap_remove(next(handles.len() as u64) as usize);
                let _ = w.g.unmap_release(&mut w.mem, mapper, h);
            }
            9 if next(20) == 0 => {
                // The other granter dies and comes back: its mappings by others become orphans.
                w.g.remove_domain(&mut w.mem, OTHER);
                handles.retain(|&(m, _)| m != OTHER);
                w.g.add_domain(OTHER, Limits::default());
                w.setup(OTHER, 1);
            }
            _ => {
                let _ = w.g.unmap_release(&mut w.mem, MAPPER, next(1 << 20) as u32);
            }
        }
        w.g.audit().unwrap_or_else(|why| panic!("step {step}: {why}"));
    }
    for (mapper, h) in handles {
        w.g.unmap_release(&mut w.mem, mapper, h).unwrap();
    }
    let a = w.g.audit().unwrap();
    assert_eq!((a.mappings, a.pinned), (0, 0), "{a:?}");
    assert!(mapped > 200, "too few maps succeeded to mean anything: {mapped}");
}

#[test]
fn device_and_host_halves_unmap_separately() {
    let mut w = World::new();
    w.grant(8, GTF_PERMIT_ACCESS, MAPPER, 0x777);
    let both = w.map(8, GNTMAP_HOST_MAP | GNTMAP_DEVICE_MAP).unwrap();
    assert_eq!(w.g.table(GRANTER).unwrap().pins(8), (0, 2), "a pin per half");
    w.g.audit().unwrap();
    assert_eq!(w.g.unmap_target(MAPPER, both.handle, 0, 0x778 << 12).map(|_| ()), Err(GNTST_BAD_DEV_ADDR));
    // The host half alone: the handle and the device pin stay, the entry stays in use.
    let t = w.g.unmap_target(MAPPER, both.handle, 0x4000_0000, 0).unwrap();
    assert!(t.host && !t.device);
    w.g.unmap_halves(&mut w.mem, MAPPER, both.handle, t.host, t.device).unwrap();
    assert_eq!(w.g.table(GRANTER).unwrap().pins(8), (0, 1));
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    assert_eq!(w.g.maptrack(MAPPER).unwrap().in_use(), 1);
    w.g.audit().unwrap();
    // No host half is left to name.
    assert_eq!(w.g.unmap_target(MAPPER, both.handle, 0x4000_0000, 0).map(|_| ()), Err(GNTST_GENERAL_ERROR));
    let t = w.g.unmap_target(MAPPER, both.handle, 0, 0x777 << 12).unwrap();
    assert!(!t.host && t.device);
    w.g.unmap_halves(&mut w.mem, MAPPER, both.handle, t.host, t.device).unwrap();
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS, "last pin gone");
    assert_eq!(w.g.maptrack(MAPPER).unwrap().in_use(), 0);
    assert_eq!(w.g.unmap_target(MAPPER, both.handle, 0, 0x777 << 12).map(|_| ()), Err(GNTST_BAD_HANDLE));
    // A device-only mapping (read-only): no host address, released by its bus address; a
    // dying mapper hands its device frames back to the machine.
    let dev = w.map(8, GNTMAP_DEVICE_MAP | GNTMAP_READONLY).unwrap();
    assert_eq!(w.g.mapping(MAPPER, dev.handle).unwrap().host_addr, 0);
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS | GTF_READING);
    w.g.audit().unwrap();
    let r = w.g.remove_domain(&mut w.mem, MAPPER);
    assert_eq!(r.device_frames, [(0x777, false)]);
    assert_eq!(w.flags(8), GTF_PERMIT_ACCESS);
}

/// A v2 world: the granter's table switched to version 2 with its status frames.
fn v2_world() -> (World, u64, u64) {
    let mut w = World::new();
    let mut next = 0x9000u64;
    w.g.set_version(&mut w.mem, GRANTER, 2, &mut || { next += 1; Some(next) }, &mut |_| true, &mut |_| {}).unwrap();
    let t = w.g.table(GRANTER).unwrap();
    assert_eq!(t.version(), 2);
    let (f, sf) = (t.frames()[0], t.status_frames()[0]);
    (w, f, sf)
}

/// The granter writes v2 entry `gref` (frame 0): header, sub-page word, 64-bit frame.
fn grant_v2(w: &mut World, f: u64, gref: u32, flags: u16, domid: u16, sub: u32, frame: u64) {
    let off = gref as usize * 16;
    w.mem.write32(f, off, header(flags, domid));
    w.mem.write32(f, off + 4, sub);
    w.mem.write32(f, off + 8, frame as u32);
    w.mem.write32(f, off + 12, (frame >> 32) as u32);
}

fn status_v2(w: &mut World, sf: u64, gref: u32) -> u16 {
    let byte = gref as usize * 2;
    (w.mem.read32(sf, byte & !3) >> ((byte & 2) * 8)) as u16
}

#[test]
fn version_2_keeps_in_use_flags_in_status_words() {
    let (mut w, f, sf) = v2_world();
    assert_eq!(w.g.table(GRANTER).unwrap().nr_entries(), 256, "one frame of 16-byte entries");
    assert_eq!(w.g.get_status_frames(GRANTER, 1).unwrap(), [sf]);
    assert_eq!(w.g.get_status_frames(GRANTER, 2), Err(GNTST_GENERAL_ERROR));
    // A frame past 32 bits (v2's reason to be), read-write, at odd and even status halves.
    grant_v2(&mut w, f, 9, GTF_PERMIT_ACCESS, MAPPER, 0, 0x12_3456_7000);
    grant_v2(&mut w, f, 10, GTF_PERMIT_ACCESS | GTF_READONLY, MAPPER, 0, 0x888);
    let m = w.map(9, RW).unwrap();
    assert_eq!(m.frame, 0x12_3456_7000);
    assert_eq!(status_v2(&mut w, sf, 9), GTF_READING | GTF_WRITING);
    assert_eq!(header_flags(w.mem.read32(f, 9 * 16)), GTF_PERMIT_ACCESS, "the header is the granter's alone");
    assert_eq!(w.map(10, RW).map(|_| ()), Err(GNTST_GENERAL_ERROR), "read-only grant");
    assert_eq!(status_v2(&mut w, sf, 10), 0, "nothing left behind");
    let r = w.map(10, RO).unwrap();
    assert_eq!(status_v2(&mut w, sf, 10), GTF_READING);
    assert_eq!(status_v2(&mut w, sf, 9), GTF_READING | GTF_WRITING, "the neighbour's half untouched");
    w.g.audit().unwrap();
    w.g.unmap_release(&mut w.mem, MAPPER, m.handle).unwrap();
    w.g.unmap_release(&mut w.mem, MAPPER, r.handle).unwrap();
    assert_eq!((status_v2(&mut w, sf, 9), status_v2(&mut w, sf, 10)), (0, 0));
    // A granter changing its entry between the two reads: refused, its status cleared.
    grant_v2(&mut w, f, 11, GTF_PERMIT_ACCESS, MAPPER, 0, 0x999);
    w.mem.meddle_v2.push((f, 11 * 16, header(GTF_PERMIT_ACCESS, OTHER)));
    assert_eq!(w.map(11, RW).map(|_| ()), Err(GNTST_GENERAL_ERROR));
    assert_eq!(status_v2(&mut w, sf, 11), 0);
    // A sub-page grant cannot be mapped; a transitive one is refused both ways.
    grant_v2(&mut w, f, 12, GTF_PERMIT_ACCESS | GTF_SUB_PAGE, MAPPER, 0x100 | (0x200 << 16), 0x999);
    assert_eq!(w.map(12, RO).map(|_| ()), Err(GNTST_GENERAL_ERROR));
    grant_v2(&mut w, f, 13, GTF_TRANSITIVE, MAPPER, 0, 0);
    assert_eq!(w.map(13, RO).map(|_| ()), Err(GNTST_GENERAL_ERROR));
    assert_eq!(w.g.copy_acquire(&mut w.mem, MAPPER, GRANTER, 13, false).map(|_| ()), Err(GNTST_GENERAL_ERROR));
    // A copy of a sub-page grant gets its part.
    assert_eq!(w.g.copy_acquire(&mut w.mem, MAPPER, GRANTER, 12, false), Ok(Pinned { frame: 0x999, start: 0x100, length: 0x200 }));
    w.g.copy_release(&mut w.mem, GRANTER, 12, false);
    assert_eq!(status_v2(&mut w, sf, 12), 0);
}

#[test]
fn set_version_carries_reserved_entries_and_refuses_while_in_use() {
    let mut w = World::new();
    // The toolstack's console and store grants (entries 0 and 1), and a live mapping of 1.
    w.grant(0, GTF_PERMIT_ACCESS, MAPPER, 0x500);
    w.grant(1, GTF_PERMIT_ACCESS, MAPPER, 0x501);
    w.grant(20, GTF_PERMIT_ACCESS, MAPPER, 0x600);
    let reserved_map = w.map(1, RW).unwrap();
    let other = w.map(20, RO).unwrap();
    let mut next = 0x9000u64;
    let mut alloc = || { next += 1; Some(next) };
    assert_eq!(w.g.set_version(&mut w.mem, GRANTER, 3, &mut alloc, &mut |_| true, &mut |_| {}), Err(VersionError::Invalid));
    assert_eq!(w.g.set_version(&mut w.mem, GRANTER, 2, &mut alloc, &mut |_| true, &mut |_| {}), Err(VersionError::Busy), "entry 20 in use");
    assert_eq!(w.g.table(GRANTER).unwrap().version(), 1);
    w.g.unmap_release(&mut w.mem, MAPPER, other.handle).unwrap();
    w.g.set_version(&mut w.mem, GRANTER, 2, &mut alloc, &mut |_| true, &mut |_| {}).unwrap();
    let t = w.g.table(GRANTER).unwrap();
    let (f, sf) = (t.frames()[0], t.status_frames()[0]);
    // Entries 0 and 1 in the v2 layout, 1's in-use flags in its status word; 20 is gone.
    assert_eq!(w.mem.read32(f, 16), header(GTF_PERMIT_ACCESS, MAPPER));
    assert_eq!(w.mem.read64(f, 16 + 8), 0x501);
    assert_eq!(w.mem.read64(f, 8), 0x500);
    assert_eq!(status_v2(&mut w, sf, 1), GTF_READING | GTF_WRITING);
    assert_eq!(w.mem.read32(f, 20 * 16), 0);
    w.g.audit().unwrap();
    // The live mapping of entry 1 unmaps through the status word.
    w.g.unmap_release(&mut w.mem, MAPPER, reserved_map.handle).unwrap();
    assert_eq!(status_v2(&mut w, sf, 1), 0);
    // Back to v1: refused while the domain maps a status frame, then done; a reserved
    // frame past 32 bits cannot be carried back.
    assert_eq!(w.g.set_version(&mut w.mem, GRANTER, 1, &mut alloc, &mut |_| false, &mut |_| {}), Err(VersionError::Busy));
    grant_v2(&mut w, f, 2, GTF_PERMIT_ACCESS, MAPPER, 0, 1 << 40);
    assert_eq!(w.g.set_version(&mut w.mem, GRANTER, 1, &mut alloc, &mut |_| true, &mut |_| {}), Err(VersionError::Range));
    grant_v2(&mut w, f, 2, GTF_INVALID, 0, 0, 0);
    let mut released = std::vec::Vec::new();
    w.g.set_version(&mut w.mem, GRANTER, 1, &mut alloc, &mut |_| true, &mut |f| released.push(f)).unwrap();
    assert_eq!(released, [sf]);
    assert_eq!(w.mem.read_v1(f, 1), (header(GTF_PERMIT_ACCESS, MAPPER), 0x501));
    assert!(w.g.table(GRANTER).unwrap().status_frames().is_empty());
}
