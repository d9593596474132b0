//! The microkernel binary: everything lives in the library; this only pulls it in so the
//! linker sees the entry point, the panic handler and the allocator.
#![no_std]
#![no_main]

use microkernel as _;
