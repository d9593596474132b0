//! hello: the smallest guest, linked at the default base (0xffffffff80000000). The
//! program is `example_guests::hello`, shared with `hello-low`.
#![no_std]
#![no_main]

pv_guest::entry!(example_guests::hello::main);
