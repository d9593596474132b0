//! pattern: writes a recognisable pattern over all of its free memory, then stays alive.
//!
//! Every word of every free page (the initial region's padding and every pfn past it, see
//! `scrub/walk.rs`) becomes `0x5a5a_c0de_0000_0000 | pfn`. Then it prints
//! `pattern: wrote <pages> pages` and yields forever, until it is destroyed. The `scanner`
//! guest, created afterwards, must find none of it: the microkernel scrubs frames before it
//! gives them to another domain.
#![no_std]
#![no_main]

extern crate alloc;

use test_guests::scrub_walk as walk;

use core::ptr;

use pv_guest::hypercall::{sched_shutdown, sched_yield};
use pv_guest::{println, ShutdownReason, StartInfo};

/// The word written all over page `pfn`.
fn pattern_word(pfn: u64) -> u64 {
    (walk::TAG << 32) | pfn
}

fn main(si: &'static StartInfo) -> ! {
    let written = walk::each_free_page(si, |pfn, page| {
        let word = pattern_word(pfn);
        for w in page.iter_mut() {
            // SAFETY: `w` is a word of a page the walk mapped writable for us.
            unsafe { ptr::write_volatile(w, word) };
        }
    });
    match written {
        Ok(pages) => println!("pattern: wrote {pages} pages"),
        Err(e) => {
            println!("pattern: failed: {e}");
            sched_shutdown(ShutdownReason::Crash)
        }
    }
    loop {
        let _ = sched_yield();
    }
}

pv_guest::entry!(main);
