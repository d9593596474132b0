//! scanner: reads all of its free memory and counts the pages that hold any word of the
//! `pattern` guest's (top half `0x5a5a_c0de`), and the pages that are not all zero.
//!
//! Prints `scanner: <scanned> pages scanned, <found> with the old pattern` and
//! `scanner: <n> pages not zero`, then powers off. Created after a `pattern` guest was
//! destroyed, with the same memory, it must find 0 of both: frames are scrubbed before
//! they are reused.
#![no_std]
#![no_main]

extern crate alloc;

use test_guests::scrub_walk as walk;

use core::ptr;

use pv_guest::{println, ShutdownReason, StartInfo};

fn main(si: &'static StartInfo) -> ShutdownReason {
    let (mut found, mut not_zero) = (0u64, 0u64);
    let scanned = walk::each_free_page(si, |_pfn, page| {
        let (mut tagged, mut any) = (false, false);
        for w in page.iter() {
            // SAFETY: `w` is a word of a page the walk mapped for us.
            let v = unsafe { ptr::read_volatile(w) };
            tagged |= v >> 32 == walk::TAG;
            any |= v != 0;
        }
        found += u64::from(tagged);
        not_zero += u64::from(any);
    });
    match scanned {
        Ok(pages) => {
            println!("scanner: {pages} pages scanned, {found} with the old pattern");
            println!("scanner: {not_zero} pages not zero");
            ShutdownReason::Poweroff
        }
        Err(e) => {
            println!("scanner: failed: {e}");
            ShutdownReason::Crash
        }
    }
}

pv_guest::entry!(main);
