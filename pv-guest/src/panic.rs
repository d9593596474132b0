//! The panic handler (guest target only): print `panic: <message> at <location>` and shut
//! the domain down with reason crash.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use hypercall_abi::sched::ShutdownReason;

use crate::console::emergency_print;
use crate::hypercall::sched_shutdown;

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    // A panic while printing the panic: do not recurse, just stop.
    if !PANICKING.swap(true, Ordering::AcqRel) {
        match info.location() {
            Some(at) => emergency_print(format_args!("panic: {} at {}\n", info.message(), at)),
            None => emergency_print(format_args!("panic: {}\n", info.message())),
        }
    }
    sched_shutdown(ShutdownReason::Crash)
}
