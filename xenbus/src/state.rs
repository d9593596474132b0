//! The xenbus device state machine (`io/xenbus.h`, `enum xenbus_state`): the values front and
//! back ends write to their `state` nodes, and the steps of the split-driver handshake.

/// `enum xenbus_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum XenbusState {
    /// 0: not yet set up (or the node is missing).
    Unknown = 0,
    /// 1: the driver is starting.
    Initialising = 1,
    /// 2: the back end waits for the front end's details (only back ends use this).
    InitWait = 2,
    /// 3: the front end has published its ring and event channel.
    Initialised = 3,
    /// 4: connected; I/O may flow.
    Connected = 4,
    /// 5: shutting down.
    Closing = 5,
    /// 6: closed.
    Closed = 6,
    /// 7: reconfiguring (back end).
    Reconfiguring = 7,
    /// 8: reconfigured (back end).
    Reconfigured = 8,
}

impl TryFrom<u32> for XenbusState {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        use XenbusState::*;
        Ok(match v {
            0 => Unknown,
            1 => Initialising,
            2 => InitWait,
            3 => Initialised,
            4 => Connected,
            5 => Closing,
            6 => Closed,
            7 => Reconfiguring,
            8 => Reconfigured,
            other => return Err(other),
        })
    }
}

/// Which half of a split driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The guest's driver.
    Front,
    /// dom0's driver.
    Back,
}

impl XenbusState {
    /// Parses the store's form (a decimal number, as `"4"`); anything else is `None`.
    pub fn parse(value: &[u8]) -> Option<XenbusState> {
        if value.is_empty() || value.len() > 2 || !value.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = value.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
        XenbusState::try_from(n).ok()
    }

    /// The store's form of this state.
    pub fn as_str(self) -> &'static str {
        const WORDS: [&str; 9] = ["0", "1", "2", "3", "4", "5", "6", "7", "8"];
        WORDS.get(self as usize).copied().unwrap_or("0")
    }

    /// Whether an `end` in state `self` may move to `next`. The handshake:
    /// back Initialising → InitWait; front Initialising → Initialised once it sees InitWait;
    /// back InitWait → Connected once it sees Initialised; front Initialised → Connected once
    /// it sees Connected. Either end may go to Closing from any live state, Closing → Closed,
    /// and Closed → Initialising to start again (reconnection). Reconfiguring is a back-end
    /// detour from Connected.
    pub fn may_become(self, end: End, next: XenbusState) -> bool {
        use XenbusState::*;
        if self == next {
            return true;
        }
        match (end, self, next) {
            (_, Unknown, Initialising) => true,
            (_, Closed, Initialising) | (_, Closing, Closed) => true,
            (_, Unknown | Closed | Closing, Closing) => false,
            (_, _, Closing) => true,
            (_, Unknown, Closed) => true,
            (End::Back, Initialising | Closed, InitWait) => true,
            (End::Back, InitWait | Initialising, Connected) => true,
            (End::Back, Connected, Reconfiguring) | (End::Back, Reconfiguring, Reconfigured) => true,
            (End::Back, Reconfigured, Connected) => true,
            (End::Front, Initialising, Initialised) => true,
            (End::Front, Initialised | Initialising, Connected) => true,
            _ => false,
        }
    }

    /// What a front end should do when the back end's state changes to `back`, given its own
    /// state `self`: the next state to write, if any.
    pub fn front_reacts_to(self, back: XenbusState) -> Option<XenbusState> {
        use XenbusState::*;
        match (self, back) {
            (Initialising, InitWait) => Some(Initialised),
            (Initialised, Connected) => Some(Connected),
            (Connected | Initialised | Initialising, Closing) => Some(Closing),
            (Closing, Closed) => Some(Closed),
            _ => None,
        }
    }

    /// What a back end should do when the front end's state changes to `front`.
    pub fn back_reacts_to(self, front: XenbusState) -> Option<XenbusState> {
        use XenbusState::*;
        match (self, front) {
            (InitWait, Initialised | Connected) => Some(Connected),
            (Connected | InitWait, Closing) => Some(Closing),
            (Closing, Closed) | (Connected | InitWait, Closed) => Some(Closed),
            (Closed, Initialising) => Some(InitWait),
            _ => None,
        }
    }
}
