//! Noticing that domains stopped: dom0 polls the domain list, and the first time it sees a
//! domain shut down or crashed it reports it once and applies the domain's `on_poweroff` or
//! `on_crash` action (a crash follows `on_crash`; any other shutdown reason, `on_poweroff`).
//! Domains dom0 did not create itself get the default action, destroy.
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use hypercall_abi::domctl::{DomainInfo, DOMINF_DYING};

use crate::config::StopAction;
use crate::xl::{crashed, display_name, stopped, ReasonWord};

/// What dom0 knows of a domain it watches.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Watched {
    name: String,
    on_poweroff: StopAction,
    on_crash: StopAction,
    /// Its stop has been reported.
    reported: bool,
}

/// A domain seen stopped for the first time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop {
    /// Its id.
    pub id: u16,
    /// Its name.
    pub name: String,
    /// It crashed (otherwise it shut down with `reason`).
    pub crashed: bool,
    /// The shutdown reason.
    pub reason: u32,
    /// What its config says to do now.
    pub action: StopAction,
}

impl fmt::Display for Stop {
    /// `xl: domain NAME (ID) shut down: REASON` or `xl: domain NAME (ID) crashed`, plus
    /// what happens to it when it is preserved.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "xl: domain {} ({}) ", self.name, self.id)?;
        if self.crashed {
            f.write_str("crashed")?;
        } else {
            write!(f, "shut down: {}", ReasonWord(self.reason))?;
        }
        match self.action {
            StopAction::Preserve => write!(f, "; preserved (xl destroy {} removes it)", self.name)?,
            StopAction::Restart => f.write_str("; restarting")?,
            StopAction::Destroy => {}
        }
        Ok(())
    }
}

impl Stop {
    /// What stopped it, for `xl: NAME stopped (<this>)`.
    pub fn why(&self) -> impl fmt::Display + '_ {
        StopWhy(self)
    }
}

struct StopWhy<'a>(&'a Stop);

impl fmt::Display for StopWhy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.crashed {
            f.write_str("crashed")
        } else {
            write!(f, "{}", ReasonWord(self.0.reason))
        }
    }
}

/// The domains dom0 watches, by id.
#[derive(Clone, Debug, Default)]
pub struct Watcher {
    domains: BTreeMap<u16, Watched>,
}

impl Watcher {
    /// An empty watcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Watches domain `id` (just created) with its config's actions.
    pub fn watch(&mut self, id: u16, name: &str, on_poweroff: StopAction, on_crash: StopAction) {
        self.domains.insert(
            id,
            Watched {
                name: String::from(name),
                on_poweroff,
                on_crash,
                reported: false,
            },
        );
    }

    /// Whether no domain is watched (then there is nothing to poll for).
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// Stops watching `id` (destroyed).
    pub fn forget(&mut self, id: u16) {
        self.domains.remove(&id);
    }

    /// The domains in `list` that stopped since the last scan (dom0 and dying domains
    /// aside), each reported once. Ids no longer listed are forgotten.
    pub fn scan(&mut self, list: &[DomainInfo]) -> Vec<Stop> {
        self.domains
            .retain(|id, _| list.iter().any(|d| d.domain == *id));
        let mut stops = Vec::new();
        for d in list.iter().filter(|d| d.domain != 0) {
            let name = display_name(d);
            let w = self.domains.entry(d.domain).or_insert_with(|| Watched {
                name: name.clone(),
                on_poweroff: StopAction::Destroy,
                on_crash: StopAction::Destroy,
                reported: false,
            });
            // An id reused by a domain we did not create.
            if w.name != name {
                *w = Watched {
                    name,
                    on_poweroff: StopAction::Destroy,
                    on_crash: StopAction::Destroy,
                    reported: false,
                };
            }
            if w.reported || !stopped(d) || d.flags & DOMINF_DYING != 0 {
                continue;
            }
            w.reported = true;
            let crash = crashed(d);
            stops.push(Stop {
                id: d.domain,
                name: w.name.clone(),
                crashed: crash,
                reason: d.shutdown_reason,
                action: if crash { w.on_crash } else { w.on_poweroff },
            });
        }
        stops
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use hypercall_abi::domctl::{DOMINF_CRASHED, DOMINF_SHUTDOWN};
    use hypercall_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT};
    use std::format;

    fn dom(id: u16, name: &str, flags: u32, reason: u32) -> DomainInfo {
        let mut d = DomainInfo {
            domain: id,
            flags,
            shutdown_reason: reason,
            ..DomainInfo::default()
        };
        d.name[..name.len()].copy_from_slice(name.as_bytes());
        d
    }

    #[test]
    fn each_stop_is_reported_once_with_its_action() {
        let mut w = Watcher::new();
        w.watch(1, "a", StopAction::Destroy, StopAction::Preserve);
        w.watch(2, "b", StopAction::Preserve, StopAction::Destroy);
        let running = [dom(0, "", 0, 0), dom(1, "a", 0, 0), dom(2, "b", 0, 0)];
        assert!(w.scan(&running).is_empty());
        let later = [
            dom(0, "", DOMINF_SHUTDOWN, 0),
            dom(1, "a", DOMINF_CRASHED, SHUTDOWN_CRASH),
            dom(2, "b", DOMINF_SHUTDOWN, SHUTDOWN_POWEROFF),
        ];
        let stops = w.scan(&later);
        assert_eq!(stops.len(), 2, "{stops:?}");
        assert_eq!(
            format!("{}", stops[0]),
            "xl: domain a (1) crashed; preserved (xl destroy a removes it)"
        );
        assert_eq!(stops[0].action, StopAction::Preserve);
        assert_eq!(
            format!("{}", stops[1]),
            "xl: domain b (2) shut down: poweroff; preserved (xl destroy b removes it)"
        );
        assert_eq!(format!("{}", stops[1].why()), "poweroff");
        // Nothing new the second time.
        assert!(w.scan(&later).is_empty());
    }

    #[test]
    fn unknown_domains_default_to_destroy_and_reused_ids_start_afresh() {
        let mut w = Watcher::new();
        let stops = w.scan(&[dom(5, "x", DOMINF_SHUTDOWN, SHUTDOWN_REBOOT)]);
        assert_eq!(
            format!("{}", stops[0]),
            "xl: domain x (5) shut down: reboot"
        );
        assert_eq!(stops[0].action, StopAction::Destroy);
        // A guest that shuts down with reason crash counts as crashed.
        w.watch(6, "y", StopAction::Preserve, StopAction::Destroy);
        let stops = w.scan(&[dom(6, "y", DOMINF_SHUTDOWN, SHUTDOWN_CRASH)]);
        assert!(stops[0].crashed);
        assert_eq!(stops[0].action, StopAction::Destroy);
        assert_eq!(format!("{}", stops[0]), "xl: domain y (6) crashed");
        // Id 6 gone, then reused by another domain: reported again.
        assert!(w.scan(&[]).is_empty());
        let stops = w.scan(&[dom(6, "z", DOMINF_SHUTDOWN, 0)]);
        assert_eq!(stops[0].name, "z");
        // Dying domains are not reported.
        let mut w = Watcher::new();
        assert!(w
            .scan(&[dom(7, "d", DOMINF_SHUTDOWN | DOMINF_DYING, 0)])
            .is_empty());
        // Odd reasons still print.
        let stops = w.scan(&[dom(8, "o", DOMINF_SHUTDOWN, 99)]);
        assert_eq!(
            format!("{}", stops[0]),
            "xl: domain o (8) shut down: reason 99"
        );
    }
}
