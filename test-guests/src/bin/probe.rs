//! probe: what an unprivileged guest may not do. Every control operation it tries must be
//! refused with `-EPERM` before anything is looked at or changed: domctl (create, destroy,
//! pause, unpause, getdomaininfo, max_mem, setvcpucontext, even with a wrong interface
//! version), sysctl (physinfo, the bench switch), console_io read,
//! `SCHEDOP_remote_shutdown`, and naming another domain in `memory_op` and `pt_update`.
//! Then it checks that it still runs (hypercalls answer, a `pt_update` of its own tables
//! works), prints `TEST <name> PASS|FAIL <why>` lines and `TESTS DONE <p> passed,
//! <f> failed`, and powers off.
//!
//! The targets are dom0 (id 0), which a scenario then checks is still running and
//! unpaused, and a domain id that does not exist (still `-EPERM`, not `-ESRCH`: the
//! caller learns nothing). The name it tries to create a domain under never appears on the
//! console, so a scenario can forbid it.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;

use pv_guest::domctl::{
    create_domain, destroy_domain, domain_info, domctl, pause_domain, remote_shutdown, set_max_mem,
    set_vcpu_context, unpause_domain,
};
use pv_guest::hypercall::{
    bench_op, console_io_read, hypercall_via_page, physinfo, sched_yield, xen_version_number,
};
use pv_guest::hypercall_abi::arch::VcpuGuestContext;
use pv_guest::hypercall_abi::domctl::{Domctl, DOMCTL_GETDOMAININFO};
use pv_guest::hypercall_abi::errno::Errno;
use pv_guest::hypercall_abi::hypercall::Hypercall;
use pv_guest::hypercall_abi::memory::{
    XenMemoryDomain, XenMemoryReservation, XENMEM_CURRENT_RESERVATION, XENMEM_POPULATE_PHYSMAP,
};
use pv_guest::hypercall_abi::mmu::MmuUpdate;
use pv_guest::hypercall_abi::sysctl::BENCH_BARE_SYSCALL_ON;
use pv_guest::hypercall_abi::types::{DomId, DOMID_SELF};
use pv_guest::mm::xen::{memory_op_raw, GuestMm};
use pv_guest::mm::{entry_maddr, make_entry, table_index, DATA_RW_FLAGS};
use pv_guest::testing::{describe, ensure, expect_ret, Outcome, Tests};
use pv_guest::{println, ShutdownReason, StartInfo};
use zerocopy::FromZeros;

const DOM0: DomId = DomId(0);
/// A domain id nobody has.
const NOBODY: DomId = DomId(4000);

/// `Err(EPERM)` and nothing else.
fn eperm<T: core::fmt::Debug>(got: Result<T, Errno>) -> Outcome {
    match got {
        Err(Errno::EPERM) => Ok(()),
        other => Err(format!("got {other:?}, want Err(EPERM)")),
    }
}

fn domctls(t: &mut Tests) {
    // Never printed: a scenario forbids this name anywhere on the console.
    t.report(
        "domctl_create_eperm",
        eperm(create_domain("intruder", 1, 256, 0, 0, 0)),
    );
    for (who, dom) in [("dom0", DOM0), ("nobody", NOBODY)] {
        t.report(
            &format!("domctl_destroy_{who}_eperm"),
            eperm(destroy_domain(dom)),
        );
        t.report(
            &format!("domctl_pause_{who}_eperm"),
            eperm(pause_domain(dom)),
        );
        t.report(
            &format!("domctl_unpause_{who}_eperm"),
            eperm(unpause_domain(dom)),
        );
        t.report(
            &format!("domctl_getdomaininfo_{who}_eperm"),
            eperm(domain_info(dom)),
        );
        t.report(
            &format!("domctl_max_mem_{who}_eperm"),
            eperm(set_max_mem(dom, 1 << 20)),
        );
    }
    let ctxt = Box::new(VcpuGuestContext::new_zeroed());
    t.report(
        "domctl_setvcpucontext_eperm",
        eperm(set_vcpu_context(NOBODY, 0, &ctxt)),
    );
    // Policy comes before the version check (which would be -EACCES).
    let mut op = Domctl::new(DOMCTL_GETDOMAININFO, 0);
    op.interface_version = 0;
    t.report("domctl_bad_version_eperm", eperm(domctl(&mut op)));
}

fn others(t: &mut Tests) {
    t.report("sysctl_physinfo_eperm", eperm(physinfo()));
    t.report(
        "sysctl_bench_eperm",
        eperm(bench_op(BENCH_BARE_SYSCALL_ON, 0)),
    );
    let mut buf = [0u8; 16];
    t.report("console_io_read_eperm", eperm(console_io_read(&mut buf)));
    for (who, dom) in [("dom0", DOM0), ("nobody", NOBODY)] {
        t.report(
            &format!("sched_remote_shutdown_{who}_eperm"),
            eperm(remote_shutdown(dom, ShutdownReason::Poweroff)),
        );
    }
    // memory_op naming another domain.
    let arg = XenMemoryDomain { domid: 0 };
    // SAFETY: the hypervisor reads the two-byte domid.
    let ret = unsafe { memory_op_raw(XENMEM_CURRENT_RESERVATION, (&raw const arg) as u64) };
    t.report(
        "memory_current_reservation_dom0_eperm",
        expect_ret(ret, Errno::EPERM.to_ret()),
    );
    let mut list = [0u64; 1];
    let reservation = XenMemoryReservation {
        extent_start: list.as_mut_ptr() as u64,
        nr_extents: 1,
        extent_order: 0,
        mem_flags: 0,
        domid: 0,
        _pad: [0; 3],
    };
    // SAFETY: the hypervisor reads `reservation` and reads and writes `list`, both ours.
    let ret = unsafe { memory_op_raw(XENMEM_POPULATE_PHYSMAP, (&raw const reservation) as u64) };
    t.report(
        "memory_populate_physmap_dom0_eperm",
        expect_ret(ret, Errno::EPERM.to_ret()),
    );
}

/// `pt_update(reqs, 1, &done, foreigndom)`: the raw result and the done count.
fn pt_update_as(req: &MmuUpdate, foreigndom: u16) -> (i64, u32) {
    let mut done = 0u32;
    // SAFETY: the hypervisor reads one request and writes `done`, both ours. The request
    // rewrites one of our own L1 entries with the value it already has.
    let ret = unsafe {
        hypercall_via_page(
            Hypercall::PtUpdate as u64,
            (req as *const MmuUpdate) as u64,
            1,
            (&raw mut done) as u64,
            u64::from(foreigndom),
            0,
        )
    };
    (ret, done)
}

/// A `pt_update` of one of our own L1 entries (a padding page, rewritten with the mapping it
/// already has) is refused when it names another domain, and accepted as our own.
fn foreign_pt_update(t: &mut Tests, si: &'static StartInfo) {
    let req = (|| -> Result<MmuUpdate, alloc::string::String> {
        let mut mm = GuestMm::init(si, None).map_err(|e| format!("{e}"))?;
        let (frame, va) = mm.alloc_mapped().ok_or("no padding page")?;
        let l1 = mm
            .boot_table_for(1, va)
            .ok_or("no L1 for the padding page")?;
        Ok(MmuUpdate {
            ptr: entry_maddr(l1, table_index(va, 1)),
            val: make_entry(frame.mfn, DATA_RW_FLAGS),
        })
    })();
    let req = match req {
        Ok(r) => r,
        Err(e) => {
            t.report("pt_update_foreign_eperm", Err(e));
            return;
        }
    };
    for (who, dom) in [("dom0", DOM0), ("nobody", NOBODY)] {
        let (ret, done) = pt_update_as(&req, dom.0);
        t.report(
            &format!("pt_update_foreign_{who}_eperm"),
            expect_ret(ret, Errno::EPERM.to_ret())
                .and(ensure(done == 0, || format!("{done} requests done"))),
        );
    }
    let (ret, done) = pt_update_as(&req, DOMID_SELF);
    t.report(
        "pt_update_self_still_works",
        expect_ret(ret, 0).and(ensure(done == 1, || format!("{done} requests done"))),
    );
}

fn still_running(t: &mut Tests) {
    let (major, minor) = xen_version_number();
    let yielded = sched_yield();
    t.report(
        "still_running",
        ensure((major, minor) == (4, 19) && yielded.is_ok(), || {
            format!(
                "xen_version {major}.{minor}, yield {}",
                describe(yielded.map_or_else(|e| e.to_ret(), |()| 0))
            )
        }),
    );
}

fn main(si: &'static StartInfo) {
    let mut t = Tests::default();
    domctls(&mut t);
    others(&mut t);
    foreign_pt_update(&mut t, si);
    still_running(&mut t);
    println!("probe: still running after every refusal");
    t.done();
}

pv_guest::entry!(main);
