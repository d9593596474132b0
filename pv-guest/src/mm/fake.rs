//! A host model of the hypervisor's side of direct paging, for testing the builder: frames
//! with contents, a type (writable or L1..L4) and a type count, pins, a base pointer, and
//! Xen's rules (a table is validated when it first gets its type, recursively; a frame is
//! never at once a table and writable; type counts fall to zero top-down).
extern crate std;

use std::boxed::Box;
use std::collections::{HashMap, HashSet};
use std::vec::Vec;

use hypercall_abi::errno::Errno;
use hypercall_abi::layout::pte;
use hypercall_abi::mmu::{
    MmuUpdate, MmuextOp, MMUEXT_CLEAR_PAGE, MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE,
    MMUEXT_PIN_L4_TABLE, MMUEXT_UNPIN_TABLE,
};
use hypercall_abi::types::{Mfn, Pfn};

use super::{entry_mfn, table_index, BatchFailure, Frame, FrameSource, Mmu, TABLE_FLAGS};

/// A frame's type: 0 = writable, 1..=4 = page-table level.
type Level = u8;

/// One hypercall the model saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `pt_update` with this many requests.
    PtUpdate(usize),
    /// `mmuext_op` with these commands.
    Ext(Vec<u32>),
}

pub struct FakeMachine {
    pub mem: HashMap<u64, Box<[u64; 512]>>,
    pub ty: HashMap<u64, (Level, u32)>,
    pub pinned: HashSet<u64>,
    pub base: u64,
    pub calls: Vec<Call>,
}

/// The bootstrap space: L4 at this mfn (pinned and current), its slot 511 → the L3 below.
pub const BOOT_L4: u64 = 1000;
/// The bootstrap L3 under slot 511.
pub const BOOT_L3: u64 = 1001;
/// Pool frames: pfn `p` is mfn `POOL_MFN + 3 * p`.
pub const POOL_MFN: u64 = 5000;

impl FakeMachine {
    /// A domain owning `pool` frames plus a bootstrap L4 and L3.
    pub fn new(pool: u64) -> Self {
        let mut m = FakeMachine {
            mem: HashMap::new(),
            ty: HashMap::new(),
            pinned: HashSet::new(),
            base: 0,
            calls: Vec::new(),
        };
        for p in 0..pool {
            m.mem.insert(POOL_MFN + 3 * p, Box::new([0; 512]));
        }
        m.mem.insert(BOOT_L4, Box::new([0; 512]));
        m.mem.insert(BOOT_L3, Box::new([0; 512]));
        m.mem.get_mut(&BOOT_L4).unwrap()[511] = (BOOT_L3 << 12) | TABLE_FLAGS;
        m.get_type(BOOT_L4, 4).unwrap();
        m.pinned.insert(BOOT_L4);
        m.get_type(BOOT_L4, 4).unwrap();
        m.base = BOOT_L4;
        m
    }

    fn owned(&self, mfn: u64) -> bool {
        self.mem.contains_key(&mfn)
    }

    /// Type and count of `mfn` (writable with count 0 if never typed).
    pub fn type_of(&self, mfn: u64) -> (Level, u32) {
        self.ty.get(&mfn).copied().unwrap_or((0, 0))
    }

    fn get_type(&mut self, mfn: u64, level: Level) -> Result<(), Errno> {
        if !self.owned(mfn) {
            return Err(Errno::EINVAL);
        }
        let (t, c) = self.type_of(mfn);
        if c > 0 {
            if t != level {
                return Err(if level == 0 {
                    Errno::EBUSY
                } else {
                    Errno::EINVAL
                });
            }
            self.ty.insert(mfn, (t, c + 1));
            return Ok(());
        }
        if level > 0 {
            self.validate(mfn, level)?;
        }
        self.ty.insert(mfn, (level, 1));
        Ok(())
    }

    fn put_type(&mut self, mfn: u64) {
        let (t, c) = self.type_of(mfn);
        assert!(c > 0, "type count underflow on mfn {mfn}");
        self.ty.insert(mfn, (t, c - 1));
        if c == 1 && t > 0 {
            let entries = *self.mem[&mfn];
            for (i, e) in entries.iter().enumerate() {
                self.put_entry(t, i, *e);
            }
        }
    }

    fn is_hypervisor_slot(level: Level, index: usize) -> bool {
        level == 4 && (256..=271).contains(&index)
    }

    fn get_entry(&mut self, level: Level, index: usize, e: u64) -> Result<(), Errno> {
        if e & pte::PRESENT == 0 || Self::is_hypervisor_slot(level, index) {
            return Ok(());
        }
        if level > 1 && e & pte::PSE != 0 {
            return Err(Errno::EINVAL);
        }
        let target = entry_mfn(e).0;
        if level == 1 {
            if !self.owned(target) {
                return Err(Errno::EBUSY);
            }
            if e & pte::RW != 0 {
                return self.get_type(target, 0);
            }
            return Ok(());
        }
        self.get_type(target, level - 1)
    }

    fn put_entry(&mut self, level: Level, index: usize, e: u64) {
        if e & pte::PRESENT == 0 || Self::is_hypervisor_slot(level, index) {
            return;
        }
        if level == 1 && e & pte::RW == 0 {
            return;
        }
        self.put_type(entry_mfn(e).0);
    }

    fn validate(&mut self, mfn: u64, level: Level) -> Result<(), Errno> {
        let entries = *self.mem[&mfn];
        for (i, e) in entries.iter().enumerate() {
            if let Err(errno) = self.get_entry(level, i, *e) {
                for (j, undo) in entries.iter().enumerate().take(i) {
                    self.put_entry(level, j, *undo);
                }
                return Err(errno);
            }
        }
        Ok(())
    }

    fn update(&mut self, req: &MmuUpdate) -> Result<(), Errno> {
        if req.ptr & 7 != 0 {
            return Err(Errno::ENOSYS);
        }
        let mfn = req.ptr >> 12;
        let index = ((req.ptr & 0xfff) / 8) as usize;
        if !self.owned(mfn) {
            return Err(Errno::EINVAL);
        }
        let (t, c) = self.type_of(mfn);
        if t > 0 && c > 0 {
            if Self::is_hypervisor_slot(t, index) {
                return Err(Errno::EINVAL);
            }
            self.get_entry(t, index, req.val)?;
            let old = self.mem[&mfn][index];
            self.put_entry(t, index, old);
        }
        self.mem.get_mut(&mfn).unwrap()[index] = req.val;
        Ok(())
    }

    fn ext(&mut self, op: &MmuextOp) -> Result<(), Errno> {
        let mfn = op.arg1;
        match op.cmd {
            MMUEXT_CLEAR_PAGE => {
                let (t, c) = self.type_of(mfn);
                if !self.owned(mfn) || (t > 0 && c > 0) {
                    return Err(Errno::EINVAL);
                }
                **self.mem.get_mut(&mfn).unwrap() = [0; 512];
                Ok(())
            }
            cmd @ MMUEXT_PIN_L1_TABLE..=MMUEXT_PIN_L4_TABLE => {
                if self.pinned.contains(&mfn) {
                    return Err(Errno::EINVAL);
                }
                self.get_type(mfn, (cmd - MMUEXT_PIN_L1_TABLE + 1) as u8)?;
                self.pinned.insert(mfn);
                Ok(())
            }
            MMUEXT_UNPIN_TABLE => {
                if !self.pinned.remove(&mfn) {
                    return Err(Errno::EINVAL);
                }
                self.put_type(mfn);
                Ok(())
            }
            MMUEXT_NEW_BASEPTR => {
                self.get_type(mfn, 4)?;
                let old = core::mem::replace(&mut self.base, mfn);
                self.put_type(old);
                Ok(())
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    /// Walks the current tables: the mfn and flags `va` maps to.
    pub fn translate(&self, va: u64) -> Option<(u64, u64)> {
        let mut table = self.base;
        for level in (1..=4u8).rev() {
            let e = self.mem.get(&table)?[table_index(va, level)];
            if e & pte::PRESENT == 0 {
                return None;
            }
            if level == 1 {
                return Some((entry_mfn(e).0, e & 0xfff));
            }
            table = entry_mfn(e).0;
        }
        None
    }
}

impl Mmu for FakeMachine {
    fn pt_update(&mut self, reqs: &[MmuUpdate]) -> Result<(), BatchFailure> {
        self.calls.push(Call::PtUpdate(reqs.len()));
        for (done, req) in reqs.iter().enumerate() {
            self.update(req)
                .map_err(|errno| BatchFailure { done, errno })?;
        }
        Ok(())
    }

    fn mmuext(&mut self, ops: &[MmuextOp]) -> Result<(), BatchFailure> {
        self.calls
            .push(Call::Ext(ops.iter().map(|o| o.cmd).collect()));
        for (done, op) in ops.iter().enumerate() {
            self.ext(op).map_err(|errno| BatchFailure { done, errno })?;
        }
        Ok(())
    }
}

/// Frames of the pool, handed out in pfn order.
pub struct FakePool {
    pub free: Vec<u64>,
    pub out: HashSet<u64>,
}

impl FakePool {
    pub fn new(pool: u64) -> Self {
        FakePool {
            free: (0..pool).rev().collect(),
            out: HashSet::new(),
        }
    }
}

impl FrameSource for FakePool {
    fn alloc_frame(&mut self) -> Option<Frame> {
        let p = self.free.pop()?;
        self.out.insert(p);
        Some(Frame {
            pfn: Pfn(p),
            mfn: Mfn(POOL_MFN + 3 * p),
        })
    }

    fn free_frame(&mut self, frame: Frame) {
        assert!(self.out.remove(&frame.pfn.0), "double free of {frame:?}");
        self.free.push(frame.pfn.0);
    }
}
