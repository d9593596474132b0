//! pv-guest: the kit for Xen-style x86_64 PV guest kernels (ring 3, Xen's PV ABI).
//!
//! - start of day (`start`): `_start`, boot stack, hypercall page, Xen ELF notes, and
//!   [`entry!`];
//! - `hypercall`: typed hypercalls through the hypercall page;
//! - [`console`]: `print!`/`println!` over `console_io`, or a domU's console ring
//!   (`console_ring`) when start_info names one;
//! - `heap` (the `#[global_allocator]`), the panic handler, `time` (rdtsc);
//! - `traps`: exception handlers through the trap table (`set_trap_table`, `iret`);
//! - `user`: the kernel's user processes (Xen's PV user mode: a user page table, the
//!   syscall callback, entering and leaving a process);
//! - `events`: event channels (shared info page, the event callback and its 2-level
//!   dispatcher, per-port handlers, `event_channel_op`);
//! - [`domctl`]: the toolstack's control calls (privileged), and [`foreign`]: another
//!   domain's memory while building it (populate, a window of foreign mappings);
//! - `xenbus`: the store front-end (the store ring and event channel from `start_info`
//!   under `xenbus::client::Client`);
//! - [`mm`]: the memory layer (p2m, frame allocator, batched `pt_update`, address spaces;
//!   portable and host-tested, with thin hypercall glue in `mm::xen`);
//! - portable, host-tested helpers: [`mod@start_info`], [`modules`], [`mod@line`],
//!   [`text`], [`stats`].
//!
//! Everything that touches registers, instructions or linker symbols is compiled for the
//! guest target (`target_os = "none"`) only, so `cargo test -p pv-guest --lib` runs the
//! portable parts on the host.
//!
//! A guest binary:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use pv_guest::{println, StartInfo};
//!
//! fn main(si: &'static StartInfo) {
//!     println!("hello from {} pages", si.nr_pages);
//! } // returning powers off
//!
//! pv_guest::entry!(main);
//! ```
#![no_std]

extern crate alloc;

pub mod console;
pub mod domctl;
pub mod foreign;
pub mod grant;
pub mod line;
pub mod mm;
pub mod modules;
pub mod start_info;
pub mod stats;
pub mod text;

#[cfg(target_os = "none")]
#[macro_use]
mod entry_asm;
#[cfg(target_os = "none")]
pub mod blkfront;
#[cfg(target_os = "none")]
pub mod console_ring;
#[cfg(target_os = "none")]
pub mod frontend;
#[cfg(target_os = "none")]
pub mod netfront;
#[cfg(target_os = "none")]
pub mod smp;
#[cfg(target_os = "none")]
pub mod events;
#[cfg(target_os = "none")]
pub mod shared_page;
#[cfg(target_os = "none")]
pub mod heap;
pub mod size_class;
#[cfg(target_os = "none")]
pub mod hypercall;
#[cfg(target_os = "none")]
mod panic;
#[cfg(target_os = "none")]
pub mod physdev;
#[cfg(target_os = "none")]
pub mod start;
#[cfg(target_os = "none")]
pub mod testing;
#[cfg(target_os = "none")]
pub mod time;
#[cfg(target_os = "none")]
pub mod traps;
#[cfg(target_os = "none")]
pub mod user;
#[cfg(target_os = "none")]
pub mod xenbus;

pub use hypercall_abi;
pub use hypercall_abi::sched::ShutdownReason;
pub use hypercall_abi::start_info::StartInfo;

/// What a guest's main may return; the kit shuts the domain down accordingly.
///
/// - `()`: poweroff;
/// - [`ShutdownReason`]: that reason;
/// - `Result<(), E>` with `E: Display`: poweroff on `Ok`, otherwise the error is printed
///   (`error: <e>`) and the domain shuts down with reason crash.
pub trait GuestExit {
    /// The shutdown reason this return value asks for.
    fn shutdown_reason(self) -> ShutdownReason;
}

impl GuestExit for () {
    fn shutdown_reason(self) -> ShutdownReason {
        ShutdownReason::Poweroff
    }
}

impl GuestExit for ShutdownReason {
    fn shutdown_reason(self) -> ShutdownReason {
        self
    }
}

impl<E: core::fmt::Display> GuestExit for Result<(), E> {
    fn shutdown_reason(self) -> ShutdownReason {
        match self {
            Ok(()) => ShutdownReason::Poweroff,
            Err(_e) => {
                #[cfg(target_os = "none")]
                println!("error: {}", _e);
                ShutdownReason::Crash
            }
        }
    }
}

/// A guest main function the kit can run: `fn(&'static StartInfo) -> R` with
/// `R:` [`GuestExit`], or `fn(&'static StartInfo) -> !`. Used by [`entry!`].
pub trait GuestMain {
    /// Runs main and returns how to shut down.
    fn run(self, si: &'static StartInfo) -> ShutdownReason;
}

impl<R: GuestExit> GuestMain for fn(&'static StartInfo) -> R {
    fn run(self, si: &'static StartInfo) -> ShutdownReason {
        self(si).shutdown_reason()
    }
}

impl GuestMain for fn(&'static StartInfo) -> ! {
    fn run(self, si: &'static StartInfo) -> ShutdownReason {
        self(si)
    }
}

/// Declares the guest's main function.
///
/// `pv_guest::entry!(path::to::main)` where main is
/// `fn main(si: &'static StartInfo) -> R` with `R` one of `()`, [`ShutdownReason`] or
/// `Result<(), impl Display>` (see [`GuestExit`]), or `fn main(si: &'static StartInfo) -> !`.
/// `pv_guest::entry!(main, heap = BYTES)` sizes the heap (default
/// [`heap::DEFAULT_HEAP_SIZE`], 2 MiB); the heap lives in the binary's .bss, so it is part
/// of the initial region the domain builder maps.
///
/// The kit calls main after zeroing .bss, switching to its 64 KiB boot stack, checking the
/// start_info magic (`"xen-..."`) and setting up the console and the heap. When main
/// returns, the domain shuts down: poweroff for `()`, the given reason otherwise. A `-> !`
/// main shuts down itself with `hypercall::sched_shutdown`. Use the macro exactly once,
/// in the guest binary; it defines the symbols `__pv_guest_main` and `__pv_guest_heap`
/// that the start code calls.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        $crate::entry!($main, heap = $crate::heap::DEFAULT_HEAP_SIZE);
    };
    ($main:path, heap = $size:expr) => {
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub fn __pv_guest_main(si: &'static $crate::StartInfo) -> $crate::ShutdownReason {
            $crate::GuestMain::run($main as fn(&'static $crate::StartInfo) -> _, si)
        }

        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub fn __pv_guest_heap() -> $crate::heap::HeapSpan {
            static AREA: $crate::heap::HeapArea<{ $size }> = $crate::heap::HeapArea::new();
            AREA.span()
        }
    };
}
