//! The hello program, shared by the `hello` and `hello-low` bins: print where it runs and a
//! few start_info facts, then return (which powers the domain off).

use pv_guest::text::Lossy;
use pv_guest::{println, start_info, StartInfo};

fn main(si: &'static StartInfo) {
    println!(
        "hello: running at {:#x}",
        (main as fn(&'static StartInfo)) as usize
    );
    println!(
        "hello: nr_pages={} cmdline=\"{}\"",
        si.nr_pages,
        Lossy(start_info::cmdline_bytes(si))
    );
}

pv_guest::entry!(main);
