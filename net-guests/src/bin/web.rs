//! web: an example guest serving HTTP on port 80 over smoltcp on interface 0. `GET /`
//! answers a small page naming the guest, its address and how many requests it served;
//! any other path is a 404; anything that is not a GET a 405. Several connections are
//! served at once; it runs until it is shut down or destroyed.
//!
//! The address comes from `ip=`, the back end's `ip`, or DHCP (see the library).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use net_guests::{num_arg, tcp_socket, Stack};
use pv_guest::{println, start_info, ShutdownReason, StartInfo};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::Duration;

const NAME: &str = "web";
/// Connections served at once.
const SOCKETS: usize = 4;
/// The longest request head read.
const MAX_REQUEST: usize = 4096;

/// The response to a request head.
fn respond(head: &str, addr: &str, served: u64) -> String {
    let first = head.lines().next().unwrap_or("");
    let mut words = first.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, body) = match (method, path) {
        ("GET", "/") => ("200 OK", format!("<html><body><h1>Hello from the web guest</h1><p>Served by a PV guest at {addr} over netfront, dom0's switch and smoltcp; request {served}.</p></body></html>\n")),
        ("GET", _) => ("404 Not Found", format!("no page {path}\n")),
        _ => ("405 Method Not Allowed", String::from("GET only\n")),
    };
    format!("HTTP/1.0 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
}

fn run(si: &'static StartInfo) -> Result<(), String> {
    let cmdline = start_info::cmdline(si);
    let port = num_arg(cmdline, "port", 80)? as u16;
    let mut stack = Stack::up(si, NAME)?;
    let addr = stack.wait_for_address(NAME, Duration::from_secs(20))?;
    let handles: Vec<SocketHandle> = (0..SOCKETS).map(|_| stack.sockets.add(tcp_socket(8192))).collect();
    let mut heads: Vec<Vec<u8>> = alloc::vec![Vec::new(); SOCKETS];
    let mut served = 0u64;
    println!("{NAME}: serving http://{addr}:{port}/");
    loop {
        stack.poll(NAME);
        for (i, &h) in handles.iter().enumerate() {
            let s = stack.sockets.get_mut::<tcp::Socket>(h);
            if !s.is_open() {
                heads[i].clear();
                s.listen(port).map_err(|e| format!("listen on {port}: {e}"))?;
                continue;
            }
            while s.can_recv() && heads[i].len() < MAX_REQUEST {
                let _ = s.recv(|buf| {
                    let n = buf.len().min(MAX_REQUEST - heads[i].len());
                    heads[i].extend_from_slice(&buf[..n]);
                    (n, ())
                });
            }
            let complete = heads[i].windows(4).any(|w| w == b"\r\n\r\n") || heads[i].len() >= MAX_REQUEST;
            if complete && s.can_send() {
                served += 1;
                let head = String::from_utf8_lossy(&heads[i]).into_owned();
                let from = s.remote_endpoint().map_or(String::from("?"), |e| format!("{e}"));
                println!("{NAME}: {} from {from}", head.lines().next().unwrap_or(""));
                let _ = s.send_slice(respond(&head, &format!("{addr}"), served).as_bytes());
                s.close();
                heads[i].clear();
            }
        }
        stack.wait(Duration::from_millis(500));
    }
}

fn main(si: &'static StartInfo) -> ShutdownReason {
    match run(si) {
        Ok(()) => ShutdownReason::Poweroff,
        Err(e) => {
            println!("{NAME}: {e}");
            ShutdownReason::Crash
        }
    }
}

pv_guest::entry!(main, heap = 2 << 20);
