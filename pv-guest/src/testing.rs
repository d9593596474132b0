//! Helpers for test guests (guest target only): one machine-readable line per check,
//! `TEST <name> PASS` or `TEST <name> FAIL <why>`, and the closing
//! `TESTS DONE <passed> passed, <failed> failed` that scenarios match.

use alloc::format;
use alloc::string::String;

use hypercall_abi::errno::Errno;

use crate::println;

/// What a check found: `Ok` or why it failed.
pub type Outcome = Result<(), String>;

/// Counts and prints the checks.
#[derive(Debug, Default)]
pub struct Tests {
    /// Checks passed.
    pub passed: u32,
    /// Checks failed.
    pub failed: u32,
}

impl Tests {
    /// Prints `TEST <name> PASS|FAIL <why>` and counts it.
    pub fn report(&mut self, name: &str, outcome: Outcome) {
        match outcome {
            Ok(()) => {
                self.passed += 1;
                println!("TEST {name} PASS");
            }
            Err(why) => {
                self.failed += 1;
                println!("TEST {name} FAIL {why}");
            }
        }
    }

    /// Prints the closing `TESTS DONE` line.
    pub fn done(&self) {
        println!("TESTS DONE {} passed, {} failed", self.passed, self.failed);
    }
}

/// A raw return value, with the errno name when it is one (`-22 (-EINVAL)`).
pub fn describe(ret: i64) -> String {
    match Errno::from_ret(ret) {
        Some(e) => format!("{ret} (-{})", e.name()),
        None => format!("{ret}"),
    }
}

/// `Ok` when `got == want`, otherwise both described.
pub fn expect_ret(got: i64, want: i64) -> Outcome {
    if got == want {
        Ok(())
    } else {
        Err(format!("got {}, want {}", describe(got), describe(want)))
    }
}

/// `Ok` when `cond` holds, otherwise `why()`.
pub fn ensure(cond: bool, why: impl FnOnce() -> String) -> Outcome {
    if cond {
        Ok(())
    } else {
        Err(why())
    }
}
