//! A fake machine for host tests of direct paging: frame contents in a map, a frame source
//! with a free set, the M2P, and records of flushes and CR3 loads; plus [`Env`], which
//! bundles it with a frame table and domains (the one under test, and others a privileged
//! one may map the frames of), plays the machine's part of the contract (charging foreign
//! releases to their owners, keeping dying domains until they own nothing), and checks
//! invariants by recomputing every count from scratch.
#![forbid(unsafe_code)]
extern crate std;

use super::page_info::{DomainMm, FrameTable, PageInfo, PageType};
use super::pt::{Mm, MmMachine};
use super::teardown::Relinquished;
use super::audit::{audit, AuditDomain};
use super::validate::present;
use hypercall_abi::layout::{pte, PT_ENTRIES};
use std::boxed::Box;
use std::collections::{BTreeSet, HashMap};
use std::vec::Vec;

/// Frames the fake machine has (mfn 0..NR_FRAMES).
pub const NR_FRAMES: u64 = 96;
/// Frames 0..FIRST_FREE are RAM the "hypervisor" keeps: never in the frame source.
pub const FIRST_FREE: u64 = 4;
/// A hole in RAM (device memory): mfns HOLE.start..HOLE.end are not RAM.
pub const HOLE: core::ops::Range<u64> = 80..84;
/// The fake machine has a 36-bit physical address width.
pub const MAX_MFN: u64 = (1 << 24) - 1;

/// The hypervisor's entry for L4 slot `slot` in the fake machine.
pub const fn hv_l4e(slot: usize) -> u64 {
    0x0000_00f0_0000_0000 | ((slot as u64) << 12) | 0x63
}

/// The fake machine.
pub struct FakeMachine {
    /// Frame contents (absent: all zero).
    pub mem: HashMap<u64, Box<[u64; PT_ENTRIES]>>,
    /// The frame source.
    pub free: BTreeSet<u64>,
    /// M2P entries set.
    pub m2p: HashMap<u64, u64>,
    /// Full TLB flushes.
    pub flushes: u64,
    /// Addresses flushed one by one.
    pub invlpgs: Vec<u64>,
    /// Flushes the domain asked for: the address (`None`: all) and the vCPU mask.
    pub guest_flushes: Vec<(Option<u64>, u64)>,
    /// CR3 loads, in order.
    pub cr3_loads: Vec<u64>,
    /// Cache flushes.
    pub wbinvds: u64,
    /// Frames released, in order.
    pub released: Vec<u64>,
}

impl FakeMachine {
    /// A machine whose frame source holds every RAM frame from [`FIRST_FREE`] on.
    pub fn new() -> Self {
        FakeMachine {
            mem: HashMap::new(),
            free: (FIRST_FREE..NR_FRAMES).filter(|m| !HOLE.contains(m)).collect(),
            m2p: HashMap::new(),
            flushes: 0,
            invlpgs: Vec::new(),
            guest_flushes: Vec::new(),
            cr3_loads: Vec::new(),
            wbinvds: 0,
            released: Vec::new(),
        }
    }

    /// Frame `mfn`'s contents (writable; created zeroed).
    pub fn frame(&mut self, mfn: u64) -> &mut [u64; PT_ENTRIES] {
        self.mem.entry(mfn).or_insert_with(|| Box::new([0; PT_ENTRIES]))
    }
}

impl Default for FakeMachine {
    fn default() -> Self {
        Self::new()
    }
}

impl MmMachine for FakeMachine {
    fn read_pte(&self, mfn: u64, index: usize) -> u64 {
        assert!(mfn < NR_FRAMES && !HOLE.contains(&mfn), "read of non-RAM frame {mfn:#x}");
        self.mem.get(&mfn).map_or(0, |f| f[index])
    }
    fn write_pte(&mut self, mfn: u64, index: usize, val: u64) {
        assert!(mfn < NR_FRAMES && !HOLE.contains(&mfn), "write to non-RAM frame {mfn:#x}");
        assert!(!self.free.contains(&mfn), "write to free frame {mfn:#x}");
        self.frame(mfn)[index] = val;
    }
    fn zero_frame(&mut self, mfn: u64) {
        self.mem.remove(&mfn);
    }
    fn copy_frame(&mut self, dst: u64, src: u64) {
        let s = self.mem.get(&src).map_or([0; PT_ENTRIES], |f| **f);
        *self.frame(dst) = s;
    }
    fn copy_bytes(&mut self, dst: u64, dst_off: usize, src: u64, src_off: usize, len: usize) {
        let bytes = |f: &[u64; PT_ENTRIES]| f.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
        let s = bytes(&self.mem.get(&src).map_or([0; PT_ENTRIES], |f| **f));
        let mut d = bytes(self.frame(dst));
        d[dst_off..dst_off + len].copy_from_slice(&s[src_off..src_off + len]);
        for (i, w) in self.frame(dst).iter_mut().enumerate() {
            *w = u64::from_le_bytes(d[i * 8..i * 8 + 8].try_into().unwrap());
        }
    }
    fn is_ram(&self, mfn: u64) -> bool {
        mfn < NR_FRAMES && !HOLE.contains(&mfn)
    }
    fn max_mfn(&self) -> u64 {
        MAX_MFN
    }
    fn hypervisor_l4e(&self, slot: usize) -> u64 {
        hv_l4e(slot)
    }
    fn set_m2p(&mut self, mfn: u64, pfn: u64) {
        self.m2p.insert(mfn, pfn);
    }
    fn alloc_frames(&mut self, order: u32) -> Option<u64> {
        let n = 1u64 << order;
        let first = self.free.iter().copied().find(|&m| m % n == 0 && (m..m + n).all(|k| self.free.contains(&k)))?;
        for k in first..first + n {
            self.free.remove(&k);
            self.mem.remove(&k);
        }
        Some(first)
    }
    fn release_frame(&mut self, mfn: u64) {
        assert!(mfn >= FIRST_FREE && self.is_ram(mfn), "released frame {mfn:#x} was never handed out");
        assert!(self.free.insert(mfn), "frame {mfn:#x} released twice");
        self.mem.remove(&mfn);
        self.released.push(mfn);
    }
    fn flush_tlb(&mut self) {
        self.flushes += 1;
    }
    fn invlpg(&mut self, va: u64) {
        self.invlpgs.push(va);
    }
    fn flush_guest(&mut self, va: Option<u64>, vcpus: u64) {
        self.guest_flushes.push((va, vcpus));
    }
    fn load_cr3(&mut self, mfn: u64) {
        self.cr3_loads.push(mfn);
    }
    fn wbinvd(&mut self) {
        self.wbinvds += 1;
    }
}

/// A present entry for `mfn` with `flags`.
pub const fn pte_for(mfn: u64, flags: u64) -> u64 {
    (mfn << 12) | flags
}

/// Read-only present entry flags.
pub const RO: u64 = pte::PRESENT | pte::USER | pte::ACCESSED;
/// Read-write present entry flags.
pub const RW: u64 = RO | pte::RW;

/// A domain other than [`Env::dom`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherDomain {
    /// Its memory-management state.
    pub mm: DomainMm,
    /// Torn down, kept because other domains still reference some of its frames.
    pub dying: bool,
}

/// A frame table, domains and a fake machine: everything an [`Mm`] needs.
pub struct Env {
    /// Every frame's accounting (its storage is leaked: tests only).
    pub frames: FrameTable<'static>,
    /// The domain under test (the caller of the hypercall tests).
    pub dom: DomainMm,
    /// Other domains, by creation order.
    pub others: Vec<OtherDomain>,
    /// The last state of domains that are gone (dying, then owning nothing).
    pub gone: Vec<DomainMm>,
    /// The machine.
    pub mach: FakeMachine,
    /// Whether unprivileged domains may hold L1 entries to other domains' frames (grant
    /// mappings, made through `Mm::grant_map` once the grant rules allowed them).
    pub grant_mappings: bool,
}

/// A frame's accounting as the rules see it: owner, counts, live type, flags (not the
/// last-type and flush-stamp bookkeeping, which only decides when to flush TLBs).
pub type Accounting = (Option<u16>, u32, u32, PageType, bool, bool, bool, bool);

/// Everything observable, for "nothing changed" checks. Frame contents compare equal when
/// they differ only by USER/ACCESSED bits that validation forced on (Xen's
/// `adjust_guest_lNe` writes them back too, even when an enclosing validation later fails).
#[derive(Clone, Debug)]
pub struct Snapshot {
    pages: Vec<Accounting>,
    mem: Vec<(u64, [u64; PT_ENTRIES])>,
    dom: DomainMm,
    others: Vec<OtherDomain>,
    pending: bool,
    free: BTreeSet<u64>,
    m2p: Vec<(u64, u64)>,
}

/// Whether entry `a` became `b` only by having USER/ACCESSED forced on.
fn same_entry(a: u64, b: u64) -> bool {
    a == b || (present(a) && b == a | (b & (pte::USER | pte::ACCESSED)))
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Snapshot) -> bool {
        let (ma, mb): (HashMap<_, _>, HashMap<_, _>) = (self.mem.iter().cloned().collect(), other.mem.iter().cloned().collect());
        let zero = [0; PT_ENTRIES];
        let frames_same = ma.keys().chain(mb.keys()).all(|m| {
            let (fa, fb) = (ma.get(m).unwrap_or(&zero), mb.get(m).unwrap_or(&zero));
            fa.iter().zip(fb.iter()).all(|(&a, &b)| same_entry(a, b) || same_entry(b, a))
        });
        frames_same
            && self.pages == other.pages
            && self.dom == other.dom
            && self.others == other.others
            && self.pending == other.pending
            && self.free == other.free
            && self.m2p == other.m2p
    }
}

impl Snapshot {
    /// What differs between two snapshots, readably.
    pub fn diff(&self, other: &Snapshot) -> std::string::String {
        use std::fmt::Write;
        let mut out = std::string::String::new();
        for (m, (a, b)) in self.pages.iter().zip(&other.pages).enumerate() {
            if a != b {
                let _ = writeln!(out, "mfn {m:#x}: {a:?} -> {b:?}");
            }
        }
        let (ma, mb): (HashMap<_, _>, HashMap<_, _>) = (self.mem.iter().cloned().collect(), other.mem.iter().cloned().collect());
        for (m, fa) in &ma {
            let fb = mb.get(m).copied().unwrap_or([0; PT_ENTRIES]);
            for i in 0..PT_ENTRIES {
                if !same_entry(fa[i], fb[i]) {
                    let _ = writeln!(out, "mem {m:#x}[{i}]: {:#x} -> {:#x}", fa[i], fb[i]);
                }
            }
        }
        for (m, fb) in &mb {
            if !ma.contains_key(m) {
                for (i, e) in fb.iter().enumerate().filter(|(_, e)| **e != 0) {
                    let _ = writeln!(out, "mem {m:#x}[{i}]: 0 -> {e:#x}");
                }
            }
        }
        if self.dom != other.dom {
            let _ = writeln!(out, "dom: {:?} -> {:?}", self.dom, other.dom);
        }
        if self.pending != other.pending {
            let _ = writeln!(out, "foreign releases pending: {} -> {}", self.pending, other.pending);
        }
        if self.others != other.others {
            let _ = writeln!(out, "others: {:?} -> {:?}", self.others, other.others);
        }
        if self.free != other.free {
            let _ = writeln!(out, "free: {:?} -> {:?}", self.free, other.free);
        }
        if self.m2p != other.m2p {
            let _ = writeln!(out, "m2p: {:?} -> {:?}", self.m2p, other.m2p);
        }
        out
    }
}

impl Env {
    /// Domain 1 (or 0 if `privileged`) with room for `max_pages` frames and none yet.
    pub fn new(privileged: bool, max_pages: u64) -> Self {
        let store: &'static mut [PageInfo] = Box::leak(std::vec![PageInfo::FREE; NR_FRAMES as usize].into_boxed_slice());
        Env {
            frames: FrameTable::new(store),
            dom: DomainMm::new(if privileged { 0 } else { 1 }, privileged, max_pages),
            others: Vec::new(),
            gone: Vec::new(),
            mach: FakeMachine::new(),
            grant_mappings: false,
        }
    }

    /// The operation view of [`Env::dom`].
    pub fn mm(&mut self) -> Mm<'_, 'static> {
        Mm { frames: &mut self.frames, dom: &mut self.dom, mach: &mut self.mach }
    }

    /// Creates another domain with no frames; returns its id (the smallest free one).
    pub fn add_domain(&mut self, privileged: bool, max_pages: u64) -> u16 {
        let id = (0..u16::MAX).find(|&id| self.dom_of(id).is_none()).unwrap();
        self.others.push(OtherDomain { mm: DomainMm::new(id, privileged, max_pages), dying: false });
        id
    }

    /// Domain `id`'s state, dying or not.
    pub fn dom_of(&self, id: u16) -> Option<&DomainMm> {
        if self.dom.id() == id {
            return Some(&self.dom);
        }
        self.others.iter().find(|o| o.mm.id() == id).map(|o| &o.mm)
    }

    /// Domain `id`'s state, mutable.
    pub fn dom_of_mut(&mut self, id: u16) -> Option<&mut DomainMm> {
        if self.dom.id() == id {
            return Some(&mut self.dom);
        }
        self.others.iter_mut().find(|o| o.mm.id() == id).map(|o| &mut o.mm)
    }

    /// Whether domain `id` exists and is not dying.
    pub fn is_live(&self, id: u16) -> bool {
        self.dom.id() == id || self.others.iter().any(|o| o.mm.id() == id && !o.dying)
    }

    /// Whether domain `id` is dying.
    pub fn is_dying(&self, id: u16) -> bool {
        self.others.iter().any(|o| o.mm.id() == id && o.dying)
    }

    /// The operation view of domain `id` (which must exist).
    pub fn mm_of(&mut self, id: u16) -> Mm<'_, 'static> {
        let dom = if self.dom.id() == id {
            &mut self.dom
        } else {
            &mut self.others.iter_mut().find(|o| o.mm.id() == id).expect("no such domain").mm
        };
        Mm { frames: &mut self.frames, dom, mach: &mut self.mach }
    }

    /// The machine's part after an operation: charges every recorded foreign release to
    /// its owner, then forgets dying domains that own nothing any more.
    pub fn settle(&mut self) {
        while let Some(r) = self.frames.pop_foreign_release() {
            self.dom_of_mut(r.owner).expect("release charged to a domain that is gone").charge_foreign_release(r);
        }
        let (gone, kept): (Vec<_>, Vec<_>) = self.others.drain(..).partition(|o| o.dying && o.mm.frames_owned() == 0);
        self.others = kept;
        self.gone.extend(gone.into_iter().map(|o| o.mm));
    }

    /// Tears domain `id` (not [`Env::dom`]) down; it stays, dying, while other domains
    /// still reference its frames.
    pub fn destroy(&mut self, id: u16) -> Relinquished {
        assert_ne!(id, self.dom.id());
        let r = self.mm_of(id).relinquish();
        self.others.iter_mut().find(|o| o.mm.id() == id).unwrap().dying = true;
        self.settle();
        r
    }

    /// Gives domain `id` `n` frames from the frame source.
    pub fn give_to(&mut self, id: u16, n: usize) -> Vec<u64> {
        (0..n).map(|_| self.mm_of(id).increase_reservation().expect("frame source empty")).collect()
    }

    /// Gives the domain `n` frames from the frame source.
    pub fn give(&mut self, n: usize) -> Vec<u64> {
        (0..n).map(|_| self.mm().increase_reservation().expect("frame source empty")).collect()
    }

    /// Writes frame memory directly, as a guest would have through a writable mapping
    /// before the frame became a table.
    pub fn poke(&mut self, mfn: u64, index: usize, val: u64) {
        self.mach.frame(mfn)[index] = val;
    }

    /// Reads frame memory.
    pub fn peek(&self, mfn: u64, index: usize) -> u64 {
        self.mach.read_pte(mfn, index)
    }

    /// The accounting of `mfn`.
    pub fn page(&self, mfn: u64) -> PageInfo {
        *self.frames.get(mfn).unwrap()
    }

    /// Everything observable.
    pub fn snapshot(&self) -> Snapshot {
        let mut mem: Vec<_> = self.mach.mem.iter().filter(|(_, f)| f.iter().any(|&e| e != 0)).map(|(&m, f)| (m, **f)).collect();
        mem.sort();
        let mut m2p: Vec<_> = self.mach.m2p.iter().map(|(&a, &b)| (a, b)).collect();
        m2p.sort();
        Snapshot {
            pages: (0..NR_FRAMES)
                .map(|m| {
                    let p = self.page(m);
                    (p.owner(), p.count(), p.type_count(), p.page_type(), p.is_validated(), p.is_pinned(), p.is_allocated(), p.is_shared())
                })
                .collect(),
            mem,
            dom: self.dom.clone(),
            others: self.others.clone(),
            pending: self.frames.has_foreign_releases(),
            free: self.mach.free.clone(),
            m2p,
        }
    }

    /// Builds a 4-level tree mapping `data` (read-write) from virtual address 0 with fresh
    /// frames (L4, L3, L2, L1), without validating anything; returns [l4, l3, l2, l1].
    pub fn build_tree(&mut self, data: &[u64]) -> [u64; 4] {
        let t = self.give(4);
        self.poke(t[0], 0, pte_for(t[1], RW));
        self.poke(t[1], 0, pte_for(t[2], RW));
        self.poke(t[2], 0, pte_for(t[3], RW));
        for (i, &d) in data.iter().enumerate() {
            self.poke(t[3], i, pte_for(d, RW));
        }
        [t[0], t[1], t[2], t[3]]
    }

    /// Recomputes every count from the validated tables, pins, base pointers, allocation
    /// and sharing of every domain, and checks it against the stored accounting; checks the
    /// typing rules (nothing both a live page table and mapped writable, types agree with
    /// every holder), the entry rules of every validated table (foreign frames only in a
    /// privileged domain's L1 entries, and only of an unprivileged owner), ownership, each
    /// domain's accounting (`tot_pages` and `shared_pages` are the frames it owns), dying
    /// domains (nothing held but by others) and the frame source. Foreign releases must
    /// have been charged ([`Env::settle`]).
    pub fn check_invariants(&self) {
        assert!(!self.frames.has_foreign_releases(), "foreign releases not charged");
        let mut doms = std::vec![AuditDomain { mm: &self.dom, dying: false }];
        doms.extend(self.others.iter().map(|o| AuditDomain { mm: &o.mm, dying: o.dying }));
        if let Err(e) = audit(&self.frames, &self.mach, &doms, self.grant_mappings) {
            panic!("audit: {e:?}");
        }
        for mfn in 0..NR_FRAMES {
            if self.page(mfn).owner().is_some() {
                assert!(mfn >= FIRST_FREE, "owned mfn {mfn:#x} not from the frame source");
                assert!(!self.mach.free.contains(&mfn), "owned mfn {mfn:#x} is also free");
            }
        }
        for &f in &self.mach.free {
            assert_eq!(self.page(f).owner(), None, "free frame {f:#x} is owned");
        }
    }
}
