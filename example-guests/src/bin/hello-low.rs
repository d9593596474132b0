//! hello-low: the hello guest linked at 0x400000 (build.rs passes
//! `--defsym=GUEST_BASE=0x400000`), to show a guest in the low half works too. The
//! program is `example_guests::hello`, shared with `hello`.
#![no_std]
#![no_main]

pv_guest::entry!(example_guests::hello::main);
