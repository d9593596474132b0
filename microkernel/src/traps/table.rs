//! The per-vCPU virtual IDT and `set_trap_table` (Xen's `do_set_trap_table`).
#![forbid(unsafe_code)]

use hypercall_abi::arch::{TrapInfo, NR_TRAP_ENTRIES};
use hypercall_abi::errno::Errno;
use hypercall_abi::layout::FLAT_KERNEL_CS;

use super::is_guest_address;
use crate::guest_access::{read_guest, GuestMemory};

/// Entries `set_trap_table` installs before it stops for a continuation. Xen's loop runs
/// until the terminator and checks for preemption after each entry; a guest can repeat
/// vectors forever, so the machine must be able to come back later.
pub const TRAP_TABLE_BATCH: usize = NR_TRAP_ENTRIES;

const EMPTY: TrapInfo = TrapInfo {
    vector: 0,
    flags: 0,
    cs: 0,
    _pad: 0,
    address: 0,
};

/// A vCPU's virtual IDT: one [`TrapInfo`] per vector, address 0 meaning "no handler".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrapTable {
    entries: [TrapInfo; NR_TRAP_ENTRIES],
}

/// How far a `set_trap_table` call got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetTrapTable {
    /// The terminator was reached (or the table was cleared); `installed` entries copied.
    Done {
        /// Entries installed by this call.
        installed: usize,
    },
    /// [`TRAP_TABLE_BATCH`] entries were installed; call again with `next` as the table
    /// address (Xen's hypercall continuation).
    Preempted {
        /// Entries installed by this call.
        installed: usize,
        /// Guest address of the first entry not yet read.
        next: u64,
    },
}

/// A refused entry or unreadable table; the entries before it stay installed, as in Xen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapTableError {
    /// Entries installed before the failure.
    pub installed: usize,
    /// `EFAULT` for an unreadable entry, `EINVAL` for a refused one.
    pub errno: Errno,
}

impl Default for TrapTable {
    fn default() -> Self {
        Self::new()
    }
}

impl TrapTable {
    /// An empty table: every vector unhandled.
    pub const fn new() -> Self {
        TrapTable {
            entries: [EMPTY; NR_TRAP_ENTRIES],
        }
    }

    /// The entry for `vector` (all zero when nothing was installed).
    pub fn entry(&self, vector: u8) -> &TrapInfo {
        self.entries.get(usize::from(vector)).unwrap_or(&EMPTY)
    }

    /// All entries, in vector order (for `VcpuGuestContext::trap_ctxt`).
    pub fn entries(&self) -> &[TrapInfo; NR_TRAP_ENTRIES] {
        &self.entries
    }

    /// Forgets every handler (`set_trap_table(NULL)`).
    pub fn clear(&mut self) {
        self.entries = [EMPTY; NR_TRAP_ENTRIES];
    }

    /// Checks one entry from the guest: handler canonical and outside the hypervisor slice,
    /// selector one Xen's `guest_gate_selector_okay` takes: one of the guest's own GDT
    /// (index below 7168: Linux gives its `__KERNEL_CS`), an LDT selector, or the flat
    /// kernel code selector, with any RPL (Xen's `fixup_guest_code_selector` raises it to
    /// 3, as [`TrapTable::install`] does). A hypervisor selector is refused. (A 64-bit
    /// guest's handlers always run on the flat kernel selector, as in Xen's bounce frame:
    /// the stored one is only reported back.)
    pub fn validate(entry: &TrapInfo) -> Result<(), Errno> {
        if entry.address != 0 && !is_guest_address(entry.address) {
            return Err(Errno::EINVAL);
        }
        let guest_gdt = usize::from(entry.cs >> 3) < crate::mm::descriptor::FIRST_RESERVED_GDT_ENTRY as usize;
        if !(guest_gdt || entry.cs & 4 != 0 || entry.cs | 3 == FLAT_KERNEL_CS) {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    /// Installs one checked entry at its vector: padding zeroed, the selector's RPL raised
    /// to 3 as Xen does.
    pub fn install(&mut self, entry: &TrapInfo) -> Result<(), Errno> {
        Self::validate(entry)?;
        let entry = &TrapInfo { cs: entry.cs | 3, ..*entry };
        if let Some(slot) = self.entries.get_mut(usize::from(entry.vector)) {
            *slot = TrapInfo { _pad: 0, ..*entry };
        }
        Ok(())
    }

    /// Replaces a whole table checked as a unit (`VCPUOP_initialise`, the domain builder):
    /// every non-empty entry must pass [`TrapTable::validate`] and sit at its own vector,
    /// or nothing changes.
    pub fn load_context(&mut self, entries: &[TrapInfo; NR_TRAP_ENTRIES]) -> Result<(), Errno> {
        for (i, e) in entries.iter().enumerate() {
            if e.address != 0 && (usize::from(e.vector) != i || Self::validate(e).is_err()) {
                return Err(Errno::EINVAL);
            }
        }
        for (dst, e) in self.entries.iter_mut().zip(entries) {
            *dst = if e.address == 0 {
                EMPTY
            } else {
                TrapInfo { _pad: 0, ..*e }
            };
        }
        Ok(())
    }

    /// The `set_trap_table` hypercall: a table address of 0 clears the table; otherwise
    /// entries are read from `table` and installed at their own vectors until one with
    /// address 0, at most [`TRAP_TABLE_BATCH`] per call.
    pub fn set_from_guest(
        &mut self,
        mem: &mut impl GuestMemory,
        table: u64,
    ) -> Result<SetTrapTable, TrapTableError> {
        if table == 0 {
            self.clear();
            return Ok(SetTrapTable::Done { installed: 0 });
        }
        let size = core::mem::size_of::<TrapInfo>() as u64;
        let mut addr = table;
        for installed in 0..TRAP_TABLE_BATCH {
            let fail = |errno| TrapTableError { installed, errno };
            let entry: TrapInfo = read_guest(mem, addr).map_err(fail)?;
            if entry.address == 0 {
                return Ok(SetTrapTable::Done { installed });
            }
            self.install(&entry).map_err(fail)?;
            addr = addr.checked_add(size).ok_or(fail(Errno::EFAULT))?;
        }
        Ok(SetTrapTable::Preempted {
            installed: TRAP_TABLE_BATCH,
            next: addr,
        })
    }
}
