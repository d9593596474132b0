//! The xenbus state machine: parsing and the split-driver handshake.

use xenbus::state::{End, XenbusState::*, XenbusState};

#[test]
fn parse_and_print() {
    for n in 0..=8u32 {
        let s = XenbusState::try_from(n).unwrap();
        assert_eq!(XenbusState::parse(s.as_str().as_bytes()), Some(s));
    }
    for bad in [&b""[..], b"9", b"-1", b"04x", b"4\0", b"100", b" 4"] {
        assert_eq!(XenbusState::parse(bad), None, "{bad:?}");
    }
    assert_eq!(XenbusState::parse(b"04"), Some(Connected));
    assert_eq!(XenbusState::try_from(9), Err(9));
}

#[test]
fn handshake_runs_to_connected_and_closes() {
    let (mut front, mut back) = (Initialising, Initialising);
    assert!(back.may_become(End::Back, InitWait));
    back = InitWait;
    let f = front.front_reacts_to(back).unwrap();
    assert!(front.may_become(End::Front, f));
    front = f;
    assert_eq!(front, Initialised);
    let b = back.back_reacts_to(front).unwrap();
    assert!(back.may_become(End::Back, b));
    back = b;
    assert_eq!(back, Connected);
    front = front.front_reacts_to(back).unwrap();
    assert_eq!(front, Connected);
    // The front end closes.
    assert!(front.may_become(End::Front, Closing));
    front = Closing;
    back = back.back_reacts_to(front).unwrap();
    assert_eq!(back, Closing);
    front = Closed;
    back = back.back_reacts_to(front).unwrap();
    assert_eq!(back, Closed);
    // And can start again.
    front = Initialising;
    assert_eq!(back.back_reacts_to(front), Some(InitWait));
    assert!(back.may_become(End::Back, InitWait));
}

#[test]
fn forbidden_transitions() {
    assert!(!Initialising.may_become(End::Front, InitWait), "InitWait is the back end's");
    assert!(!Closed.may_become(End::Front, Connected));
    assert!(!Connected.may_become(End::Front, Initialised));
    assert!(!Closed.may_become(End::Back, Closing));
    assert!(!Connected.may_become(End::Front, Reconfiguring));
    assert!(Connected.may_become(End::Back, Reconfiguring));
    assert_eq!(Connected.front_reacts_to(Initialising), None);
}
