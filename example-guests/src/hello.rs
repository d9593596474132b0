//! The hello program, the `hello` and `hello-low` bins' `main`: print where it runs and a
//! few start_info facts, show a timer tick, an event channel ping and the wall clock, then
//! return (which powers the domain off).
//!
//! The ping goes through an interdomain channel whose two ends are both this domain
//! (`alloc_unbound` for `DOMID_SELF`, then `bind_interdomain` to that port), the same calls
//! two domains make once they know each other's id and port.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use pv_guest::hypercall_abi::errno::Errno;
use pv_guest::hypercall_abi::types::DOMID_SELF;
use pv_guest::text::Lossy;
use pv_guest::time::{self, NS_PER_MS};
use pv_guest::{events, println, start_info, StartInfo};

/// Set when an event arrives at the ping's receiving end.
static PINGED: AtomicBool = AtomicBool::new(false);
/// The port it arrived on.
static PINGED_PORT: AtomicU32 = AtomicU32::new(0);

fn on_ping(port: u32) {
    PINGED_PORT.store(port, Ordering::SeqCst);
    PINGED.store(true, Ordering::SeqCst);
}

/// Sleeps 10 ms on the one-shot timer and says how long it took.
fn timer_tick() -> Result<(), Errno> {
    let port = time::init_timer()?;
    let t0 = time::now_ns();
    time::sleep_ns(10 * NS_PER_MS)?;
    let dt = time::now_ns() - t0;
    println!(
        "hello: timer tick after {}.{:03} ms (VIRQ_TIMER on port {port})",
        dt / NS_PER_MS,
        dt % NS_PER_MS / 1000
    );
    Ok(())
}

/// Sends an event from one end of a channel and waits for it at the other.
fn ping() -> Result<(), Errno> {
    let a = events::alloc_unbound(DOMID_SELF)?;
    let b = events::bind_interdomain(DOMID_SELF, a)?;
    events::set_handler(b, on_ping)?;
    events::unmask(b)?;
    // Binding notified b (as Xen does), delivered at the unmask: wait for the ping itself.
    PINGED.store(false, Ordering::SeqCst);
    events::send(a)?;
    time::block_until(&PINGED)?;
    let got = PINGED_PORT.load(Ordering::SeqCst);
    println!("hello: event channel ping: sent on port {a}, delivered on port {got}");
    events::close(b)?;
    events::close(a)?;
    Ok(())
}

/// The program: what it prints, then back (the domain powers off).
pub fn main(si: &'static StartInfo) {
    println!(
        "hello: running at {:#x}",
        (main as fn(&'static StartInfo)) as usize
    );
    println!(
        "hello: nr_pages={} cmdline=\"{}\"",
        si.nr_pages,
        Lossy(start_info::cmdline_bytes(si))
    );
    if let Err(e) = events::init(si) {
        println!("hello: no event channels: -{}", e.name());
        return;
    }
    if let Err(e) = timer_tick() {
        println!("hello: timer: -{}", e.name());
    }
    if let Err(e) = ping() {
        println!("hello: ping: -{}", e.name());
    }
    let (secs, _) = time::wall_clock();
    let (y, mo, d, h, mi, s) = time::civil_from_unix(secs);
    println!("hello: wall clock {y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC");
}

