//! pingpong: two domains bounce events over one interdomain event channel and count them
//! exactly; with `bench`, they also time the round trip against a yield-based floor.
//!
//! Command line: `role=ping|pong peer=<domid> count=<n> [bench]` (every word once; `n`
//! from 1 to 10000000). A bad command line prints `pingpong: bad command line "<line>":
//! <why>` and shuts down with reason crash.
//!
//! Handshake, through the store (as split drivers do): `ping` allocates an unbound port for
//! `peer`, writes it to `data/pingpong-port` in its store home (`/local/domain/<ping>`),
//! readable by `peer` alone (permissions `n<ping> r<peer>`, in one transaction), having
//! printed `pingpong: ping port <p> for domain <peer>` just before; `pong` asks the store
//! for ping's home (`GET_DOMAIN_PATH`) and reads the node (yielding and reading again for
//! up to [`PUBLISH_NS`] while ping has not written it yet: the store says `ENOENT` or, as
//! ping's home is not pong's to read, `EACCES`; if it never appears it prints `pingpong: pong found no port of domain
//! <peer> in the store` and crashes) and binds to the port. Binding sets pong's new port
//! pending once (as Xen); pong waits for that event (not counted), prints `pingpong: pong
//! bound port <p> of domain <peer> as <local>` and sends one "hello" event (not counted);
//! ping, once it has the hello, prints `pingpong: connected`.
//!
//! Ping-pong: strictly alternating, because a 2-level event sent while the previous one is
//! still pending is merged into it: ping sends and blocks (`time::block_until`) until its
//! handler has seen the reply; pong's handler counts each event and replies from the
//! handler, after the dispatcher has cleared the pending bit. Both sides count every
//! event sent and received after the handshake; at the end each lingers [`LINGER_NS`] so a
//! late extra event is counted too, then prints `pingpong: ping sent <s> received <r>` /
//! `pingpong: pong received <r> sent <s>` (all equal to `count` when nothing was lost or
//! added), `pingpong: done`, and powers off. A round trip that takes more than
//! [`ROUND_TRIP_NS`] (a lost event) makes ping print `pingpong: ping round trip <i> of
//! <n> timed out` and its counts; pong, when nothing arrives for [`STALL_NS`], prints
//! `pingpong: pong stalled after <r> of <n> events` and its counts. Those, an event on a
//! port without a handler, a refused send or counts other than expected end with
//! `pingpong: failed: <why>` and a crash. Every wait is bounded by a watchdog:
//! `VIRQ_TIMER`, re-armed every [`WATCHDOG_NS`] while waiting.
//!
//! Bench mode (`bench`), ping side after the ping-pong phase, every sample individually
//! timed with rdtsc, medians printed as
//! `BENCH event_round_trip_2dom <v> cycles yield_round_trip_2dom <floor>` (each of the
//! `count` round trips: send, block until the reply was handled),
//! `BENCH yield_round_trip_2dom <floor> cycles` (ping's `SCHEDOP_yield` while pong yields in
//! a loop: two null hypercalls and two domain switches, plus a turn of every other
//! runnable domain, dom0 included while it polls), `BENCH hypercall_null_domU <n> cycles`
//! (ping's `xen_version`), `BENCH yield_pong_blocked <y> cycles hypercall_null_domU <n>`
//! (ping's yield while pong is blocked: near the null hypercall when no other domain is
//! runnable, a round trip through it when one is), then `BENCH DONE`. The phases are
//! driven by events: after `count` round trips, ping's next event tells pong to start
//! yielding; pong acknowledges with one event once in its loop, and ping's following event
//! stops it; pong then masks its upcalls and acknowledges again. Then the poll phase:
//! `count` more round trips with upcalls masked on both sides, each side waiting with
//! `SCHEDOP_poll` on the port and clearing its pending bit itself (no upcall, no `iret`):
//! `BENCH event_round_trip_2dom_poll <v> cycles yield_round_trip_2dom <floor>`. So in bench
//! mode ping sends and receives `count + 2` events through its handler, pong the same, and
//! each `count` more in the poll phase; ping checks its counts and prints
//! `BENCH ERROR <why>` if one is off.
#![no_std]
#![no_main]

extern crate alloc;

use test_guests::pingpong_args as args;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pv_guest::events;
use pv_guest::hypercall::{sched_yield, xen_version_raw};
use pv_guest::hypercall_abi::errno::Errno;
use pv_guest::hypercall_abi::event_channel::VIRQ_TIMER;
use pv_guest::hypercall_abi::version::XENVER_VERSION;
use pv_guest::start_info::cmdline;
use pv_guest::stats::{median, sample};
use pv_guest::time::{self, now_ns, rdtsc, NS_PER_MS};
use pv_guest::{println, ShutdownReason, StartInfo};
use xenbus::client::ClientError;
use xenbus::wire::XsError;

use args::{parse_args, Args, Role};

/// Highest port pong tries when looking for ping's.
/// Where ping publishes its port, relative to its store home.
const PORT_NODE: &str = "data/pingpong-port";
/// How long pong keeps looking for ping's port in the store.
const PUBLISH_NS: u64 = 5_000 * NS_PER_MS;
/// How long ping waits for pong's hello.
const HELLO_NS: u64 = 10_000 * NS_PER_MS;
/// A round trip slower than this is taken for a lost event.
const ROUND_TRIP_NS: u64 = 5_000 * NS_PER_MS;
/// Pong gives up when no event arrives for this long (longer than a ping timeout).
const STALL_NS: u64 = 10_000 * NS_PER_MS;
/// How long each side waits after its last event for extra ones.
const LINGER_NS: u64 = 100 * NS_PER_MS;
/// Period of the watchdog timer that bounds every block.
const WATCHDOG_NS: u64 = 100 * NS_PER_MS;
/// Samples of the yield round trip and of the null hypercall (bench mode).
const BENCH_SAMPLES: usize = 20_000;
/// Untimed iterations before those.
const BENCH_WARMUP: usize = 1_000;

/// Set by every handler: the main loop re-checks what it waits for.
static WAKE: AtomicBool = AtomicBool::new(false);
/// Set by the watchdog timer's handler; starts set so the first wait arms the timer.
static WATCHDOG_FIRED: AtomicBool = AtomicBool::new(true);
/// Our end of the channel (`u64::MAX` until known).
static PORT: AtomicU64 = AtomicU64::new(u64::MAX);
/// Pong: the bind notification arrived (it is not counted).
static BOUND_SEEN: AtomicBool = AtomicBool::new(false);
/// Ping: pong's hello arrived (it is not counted).
static HELLO_SEEN: AtomicBool = AtomicBool::new(false);
/// Events received on the channel after the handshake.
static RECEIVED: AtomicU64 = AtomicU64::new(0);
/// Events sent on the channel after the handshake.
static SENT: AtomicU64 = AtomicU64::new(0);
/// Sends the hypervisor refused.
static SEND_ERRORS: AtomicU64 = AtomicU64::new(0);
/// Pong: `count` from the command line, for its handler.
static COUNT: AtomicU64 = AtomicU64::new(0);
/// Pong, bench mode: ping asked it to start yielding / to stop.
static YIELD_START: AtomicBool = AtomicBool::new(false);
static YIELD_STOP: AtomicBool = AtomicBool::new(false);
/// Pong runs in bench mode (its handler then knows the two control events).
static BENCH: AtomicBool = AtomicBool::new(false);
/// Events received and sent in the poll phase (bench mode).
static POLL_RECEIVED: AtomicU64 = AtomicU64::new(0);
static POLL_SENT: AtomicU64 = AtomicU64::new(0);

/// Poll phase: waits with upcalls masked until our port is pending (`SCHEDOP_poll`, bounded
/// by `timeout_ns`), then clears it; whether it came.
fn poll_for_event(timeout_ns: u64) -> Result<bool, Errno> {
    let port = PORT.load(Ordering::SeqCst) as u32;
    let deadline = now_ns().saturating_add(timeout_ns);
    while !events::is_pending(port) {
        if now_ns() >= deadline {
            return Ok(false);
        }
        events::poll(&[port], deadline)?;
    }
    events::clear_pending(port);
    POLL_RECEIVED.fetch_add(1, Ordering::SeqCst);
    Ok(true)
}

/// Poll phase: sends on our port, counting it.
fn poll_send() {
    let port = PORT.load(Ordering::SeqCst) as u32;
    match events::send(port) {
        Ok(()) => POLL_SENT.fetch_add(1, Ordering::SeqCst),
        Err(_) => SEND_ERRORS.fetch_add(1, Ordering::SeqCst),
    };
}

fn on_watchdog(_port: u32) {
    WATCHDOG_FIRED.store(true, Ordering::SeqCst);
    WAKE.store(true, Ordering::SeqCst);
}

/// Sends on our port, counting it (or the refusal).
fn send_counted() {
    let port = PORT.load(Ordering::SeqCst) as u32;
    match events::send(port) {
        Ok(()) => SENT.fetch_add(1, Ordering::SeqCst),
        Err(_) => SEND_ERRORS.fetch_add(1, Ordering::SeqCst),
    };
}

fn on_ping_port(_port: u32) {
    if HELLO_SEEN.swap(true, Ordering::SeqCst) {
        RECEIVED.fetch_add(1, Ordering::SeqCst);
    }
    WAKE.store(true, Ordering::SeqCst);
}

fn on_pong_port(_port: u32) {
    if BOUND_SEEN.swap(true, Ordering::SeqCst) {
        let r = RECEIVED.fetch_add(1, Ordering::SeqCst) + 1;
        let count = COUNT.load(Ordering::SeqCst);
        if r <= count {
            // The dispatcher cleared our pending bit before calling us, and ping sends its
            // next event only after this reply: nothing can merge.
            send_counted();
        } else if BENCH.load(Ordering::SeqCst) && r == count + 1 {
            YIELD_START.store(true, Ordering::SeqCst);
        } else if BENCH.load(Ordering::SeqCst) && r == count + 2 {
            YIELD_STOP.store(true, Ordering::SeqCst);
        }
        // Anything beyond is an extra event: counted, not answered.
    }
    WAKE.store(true, Ordering::SeqCst);
}

/// Blocks (`SCHEDOP_block` through `time::block_until`) until `done()` holds or
/// `timeout_ns` of system time passed; `Ok(false)` on timeout. `WAKE` is cleared before
/// `done` is checked, so an event handled after the check still ends the block at once.
fn wait(done: impl Fn() -> bool, timeout_ns: u64) -> Result<bool, Errno> {
    let deadline = now_ns().saturating_add(timeout_ns);
    loop {
        WAKE.store(false, Ordering::SeqCst);
        if done() {
            return Ok(true);
        }
        let now = now_ns();
        if now >= deadline {
            return Ok(false);
        }
        if WATCHDOG_FIRED.swap(false, Ordering::SeqCst) {
            time::set_timer_op(now + WATCHDOG_NS.min(deadline - now))?;
        }
        time::block_until(&WAKE)?;
    }
}

/// Maps shared info, registers the callback, binds the watchdog timer.
fn init_events(si: &StartInfo) -> Result<(), String> {
    events::init(si).map_err(|e| format!("events::init: -{}", e.name()))?;
    let t = events::bind_virq(VIRQ_TIMER, 0).map_err(|e| format!("bind_virq: -{}", e.name()))?;
    events::set_handler(t, on_watchdog).map_err(|e| format!("set_handler: -{}", e.name()))?;
    events::unmask(t).map_err(|e| format!("unmask: -{}", e.name()))
}

/// (sent, received) after the handshake.
fn counts() -> (u64, u64) {
    (SENT.load(Ordering::SeqCst), RECEIVED.load(Ordering::SeqCst))
}

fn print_counts(a: &Args) {
    let (sent, received) = counts();
    match a.role {
        Role::Ping => println!("pingpong: ping sent {sent} received {received}"),
        Role::Pong => println!("pingpong: pong received {received} sent {sent}"),
    }
    let refused = SEND_ERRORS.load(Ordering::SeqCst);
    if refused != 0 {
        println!("pingpong: {refused} sends refused");
    }
}

/// Lingers for late events, prints the counts and checks them: no stray event, no refused
/// send, and as many events each way as the protocol sends (`count`, plus the two control
/// events and their acknowledgements in bench mode).
fn finish(a: &Args) -> Result<(), String> {
    wait(|| false, LINGER_NS).map_err(|e| format!("wait: -{}", e.name()))?;
    print_counts(a);
    let stray = events::stray_events();
    if stray != 0 {
        return Err(format!(
            "{stray} stray events, last on port {:?}",
            events::last_stray_port()
        ));
    }
    if SEND_ERRORS.load(Ordering::SeqCst) != 0 {
        return Err("a send was refused".into());
    }
    let (sent, received) = counts();
    let want = if a.bench { a.count + 2 } else { a.count };
    if (sent, received) != (want, want) {
        return Err(format!("sent {sent} received {received}, want {want} each"));
    }
    Ok(())
}

fn ping(si: &StartInfo, a: &Args) -> Result<(), String> {
    init_events(si)?;
    // The peer may not exist yet (both are created back to back): a port is reserved only
    // for a domain that exists (`ESRCH` otherwise), so wait for it as for its store node.
    let deadline = now_ns() + PUBLISH_NS;
    let port = loop {
        match events::alloc_unbound(a.peer) {
            Err(Errno::ESRCH) if now_ns() < deadline => {
                let _ = sched_yield();
            }
            r => break r,
        }
    }
    .map_err(|e| format!("alloc_unbound({}): -{}", a.peer, e.name()))?;
    // Handler before unmask: nothing can be delivered to the masked port before it.
    PORT.store(u64::from(port), Ordering::SeqCst);
    events::set_handler(port, on_ping_port).map_err(|e| format!("set_handler: -{}", e.name()))?;
    events::unmask(port).map_err(|e| format!("unmask: -{}", e.name()))?;
    // Said before it is published: pong cannot bind (and say so) before this line is out.
    println!("pingpong: ping port {port} for domain {}", a.peer);
    publish_port(si, a.peer, port)?;
    let hello = wait(|| HELLO_SEEN.load(Ordering::SeqCst), HELLO_NS)
        .map_err(|e| format!("wait: -{}", e.name()))?;
    if !hello {
        return Err(format!(
            "no hello from domain {} within {} s",
            a.peer,
            HELLO_NS / 1_000_000_000
        ));
    }
    println!("pingpong: connected");

    let mut round_trips: Vec<u32> = Vec::new();
    if a.bench {
        round_trips.reserve(a.count as usize);
    }
    for i in 1..=a.count {
        let start = rdtsc();
        send_counted();
        let replied = wait(|| RECEIVED.load(Ordering::SeqCst) >= i, ROUND_TRIP_NS)
            .map_err(|e| format!("wait: -{}", e.name()))?;
        let end = rdtsc();
        if !replied {
            println!("pingpong: ping round trip {i} of {} timed out", a.count);
            print_counts(a);
            return Err("a round trip timed out".into());
        }
        if a.bench {
            round_trips.push(sample(start, end));
        }
        if a.gap_us > 0 {
            // The one-shot timer ends the gap (the watchdog's is re-armed only once fired).
            time::set_timer_op(now_ns() + a.gap_us * 1000).map_err(|e| format!("timer: -{}", e.name()))?;
            wait(|| false, a.gap_us * 1000).map_err(|e| format!("wait: -{}", e.name()))?;
        }
    }
    if a.bench {
        bench(a, &mut round_trips)?;
    }
    finish(a)
}

/// Times `op` `BENCH_SAMPLES` times individually (after a warm-up); the median.
fn measure(mut op: impl FnMut()) -> u32 {
    for _ in 0..BENCH_WARMUP {
        op();
    }
    let mut samples: Vec<u32> = Vec::with_capacity(BENCH_SAMPLES);
    for _ in 0..BENCH_SAMPLES {
        let start = rdtsc();
        op();
        let end = rdtsc();
        samples.push(sample(start, end));
    }
    median(&mut samples).unwrap_or(0)
}

/// Ping's bench phases after the ping-pong: null hypercall and yield (pong blocked), then
/// the yield round trip (pong yielding in a loop), then the BENCH lines.
fn bench(a: &Args, round_trips: &mut [u32]) -> Result<(), String> {
    let event_rt = median(round_trips).unwrap_or(0);
    // The tail, in µs of system time: what an I/O domain sees when others compete.
    let t = pv_guest::time::time_info();
    let us = |c: u32| pv_guest::time::scale_delta(u64::from(c), t.tsc_to_system_mul, t.tsc_shift) / 1000;
    let p99 = pv_guest::stats::percentile(round_trips, 99).unwrap_or(0);
    let max = round_trips.iter().copied().max().unwrap_or(0);
    println!("pingpong: round trips: p50 {} us, p99 {} us, max {} us", us(event_rt), us(p99), us(max));
    let null = measure(|| {
        // SAFETY: XENVER_version takes no argument and touches no guest memory.
        unsafe {
            xen_version_raw(XENVER_VERSION, core::ptr::null_mut());
        }
    });
    // With pong blocked, a yield only switches if another domain (dom0 polling its
    // console) is runnable: beside the null hypercall this shows whether one is.
    let yield_alone = measure(|| {
        let _ = sched_yield();
    });
    // Start pong's yield loop and wait for its acknowledgement (sent from inside the loop).
    send_counted();
    let acked = wait(|| RECEIVED.load(Ordering::SeqCst) > a.count, ROUND_TRIP_NS)
        .map_err(|e| format!("wait: -{}", e.name()))?;
    if !acked {
        println!("BENCH ERROR pong did not start yielding");
        return Err("pong did not acknowledge the yield phase".into());
    }
    let yield_rt = measure(|| {
        let _ = sched_yield();
    });
    // Stop pong's yield loop; it masks its upcalls for the poll phase and acknowledges.
    send_counted();
    let acked = wait(|| RECEIVED.load(Ordering::SeqCst) > a.count + 1, ROUND_TRIP_NS)
        .map_err(|e| format!("wait: -{}", e.name()))?;
    if !acked {
        println!("BENCH ERROR pong did not start the poll phase");
        return Err("pong did not acknowledge the poll phase".into());
    }
    events::disable_upcalls();
    let mut polled: Vec<u32> = Vec::with_capacity(a.count as usize);
    for i in 1..=a.count {
        let start = rdtsc();
        poll_send();
        let replied = poll_for_event(ROUND_TRIP_NS).map_err(|e| format!("poll: -{}", e.name()))?;
        let end = rdtsc();
        if !replied {
            events::enable_upcalls();
            println!("BENCH ERROR poll round trip {i} of {} timed out", a.count);
            return Err("a poll round trip timed out".into());
        }
        polled.push(sample(start, end));
    }
    events::enable_upcalls();
    let poll_rt = median(&mut polled).unwrap_or(0);
    println!("BENCH event_round_trip_2dom {event_rt} cycles yield_round_trip_2dom {yield_rt}");
    println!("BENCH event_round_trip_2dom_poll {poll_rt} cycles yield_round_trip_2dom {yield_rt}");
    println!("BENCH yield_round_trip_2dom {yield_rt} cycles");
    println!("BENCH hypercall_null_domU {null} cycles");
    println!("BENCH yield_pong_blocked {yield_alone} cycles hypercall_null_domU {null}");
    let (sent, received) = counts();
    let polled = (POLL_SENT.load(Ordering::SeqCst), POLL_RECEIVED.load(Ordering::SeqCst));
    if (sent, received) != (a.count + 2, a.count + 2) || polled != (a.count, a.count) {
        println!(
            "BENCH ERROR ping sent {sent} received {received}, polled {polled:?}, want {} each",
            a.count + 2
        );
    }
    println!("BENCH DONE");
    Ok(())
}

/// Ping: writes `port` to [`PORT_NODE`] in its store home, readable by `peer` only.
fn publish_port(si: &StartInfo, peer: u16, port: u32) -> Result<(), String> {
    let mut xs = pv_guest::xenbus::connect(si).map_err(|e| format!("store: -{}", e.name()))?;
    pv_guest::xenbus::publish_to(&mut xs, PORT_NODE, format!("{port}").as_bytes(), peer)
        .map_err(|e| format!("store: publishing {PORT_NODE}: {e:?}"))
}

/// Pong: reads ping's port from the store (waiting up to [`PUBLISH_NS`] for it) and binds
/// to it; (ping's port, ours).
fn find_ping_port(si: &StartInfo, peer: u16) -> Result<(u32, u32), String> {
    let mut xs = pv_guest::xenbus::connect(si).map_err(|e| format!("store: -{}", e.name()))?;
    let v = match pv_guest::xenbus::read_from(&mut xs, peer, PORT_NODE, PUBLISH_NS) {
        Ok(v) => v,
        Err(ClientError::Store(XsError::ENOENT | XsError::EACCES)) => {
            return Err(format!("pong found no port of domain {peer} in the store"))
        }
        Err(e) => return Err(format!("store read {PORT_NODE} of domain {peer}: {e:?}")),
    };
    let p: u32 = core::str::from_utf8(&v)
        .ok()
        .and_then(|s| s.trim_end_matches('\0').parse().ok())
        .ok_or_else(|| format!("{PORT_NODE} of domain {peer} holds no port number"))?;
    let local = events::bind_interdomain(peer, p).map_err(|e| format!("bind_interdomain({peer}, {p}): -{}", e.name()))?;
    Ok((p, local))
}

fn pong(si: &StartInfo, a: &Args) -> Result<(), String> {
    COUNT.store(a.count, Ordering::SeqCst);
    BENCH.store(a.bench, Ordering::SeqCst);
    init_events(si)?;
    let (remote, local) = find_ping_port(si, a.peer)?;
    // The new port is masked and pending (the bind notification): handler first, then
    // unmask, and wait for that one event before anything else can arrive.
    PORT.store(u64::from(local), Ordering::SeqCst);
    events::set_handler(local, on_pong_port).map_err(|e| format!("set_handler: -{}", e.name()))?;
    events::unmask(local).map_err(|e| format!("unmask: -{}", e.name()))?;
    let bound = wait(|| BOUND_SEEN.load(Ordering::SeqCst), ROUND_TRIP_NS)
        .map_err(|e| format!("wait: -{}", e.name()))?;
    if !bound {
        return Err("the bind notification never arrived".into());
    }
    println!(
        "pingpong: pong bound port {remote} of domain {} as {local}",
        a.peer
    );
    events::send(local).map_err(|e| format!("send hello: -{}", e.name()))?;

    // Every event until `count`, each within STALL_NS of the previous one.
    loop {
        let seen = RECEIVED.load(Ordering::SeqCst);
        if seen >= a.count {
            break;
        }
        let more = wait(|| RECEIVED.load(Ordering::SeqCst) != seen, STALL_NS)
            .map_err(|e| format!("wait: -{}", e.name()))?;
        if !more {
            println!("pingpong: pong stalled after {seen} of {} events", a.count);
            print_counts(a);
            return Err("no event from ping".into());
        }
    }
    if a.bench {
        let start = wait(|| YIELD_START.load(Ordering::SeqCst), STALL_NS)
            .map_err(|e| format!("wait: -{}", e.name()))?;
        if !start {
            print_counts(a);
            return Err("ping never started the yield phase".into());
        }
        send_counted();
        // Only yields here: ping's stop event is delivered on the way back from one.
        // The clock is read every 256 yields only, to keep the loop a bare yield.
        let give_up = now_ns().saturating_add(STALL_NS);
        let mut yields = 0u32;
        while !YIELD_STOP.load(Ordering::SeqCst) {
            yields = yields.wrapping_add(1);
            if yields.is_multiple_of(256) && now_ns() >= give_up {
                print_counts(a);
                return Err("ping never ended the yield phase".into());
            }
            let _ = sched_yield();
        }
        // The poll phase: upcalls masked, the port's events taken with SCHEDOP_poll.
        events::disable_upcalls();
        send_counted();
        for i in 1..=a.count {
            let got = poll_for_event(STALL_NS).map_err(|e| format!("poll: -{}", e.name()))?;
            if !got {
                events::enable_upcalls();
                println!("pingpong: pong poll phase stalled after {} of {} events", i - 1, a.count);
                return Err("no event from ping in the poll phase".into());
            }
            poll_send();
        }
        events::enable_upcalls();
        let polled = (POLL_RECEIVED.load(Ordering::SeqCst), POLL_SENT.load(Ordering::SeqCst));
        if polled != (a.count, a.count) {
            return Err(format!("poll phase received and sent {polled:?}, want {} each", a.count));
        }
    }
    finish(a)
}

fn main(si: &'static StartInfo) -> ShutdownReason {
    let line = cmdline(si);
    let a = match parse_args(line) {
        Ok(a) => a,
        Err(why) => {
            println!("pingpong: bad command line \"{line}\": {why}");
            return ShutdownReason::Crash;
        }
    };
    let result = match a.role {
        Role::Ping => ping(si, &a),
        Role::Pong => pong(si, &a),
    };
    match result {
        Ok(()) => {
            println!("pingpong: done");
            ShutdownReason::Poweroff
        }
        Err(why) => {
            println!("pingpong: failed: {why}");
            ShutdownReason::Crash
        }
    }
}

pv_guest::entry!(main);
