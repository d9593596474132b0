//! The generic request/response ring against hostile peers.

use xenbus::ring::generic::{BackRing, FrontRing, Geometry, REQ_PROD, RING_OFFSET, RSP_PROD};
use xenbus::ring::{LocalPage, RingError, SharedMem};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Req {
    id: u64,
    sector: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Rsp {
    id: u64,
    status: i32,
    pad: u32,
}

#[test]
fn geometry_is_the_largest_power_of_two_that_fits() {
    assert_eq!(Geometry::new::<Req, Rsp>(4096).unwrap(), Geometry { slots: 128, slot_size: 16 });
    assert_eq!(Geometry::new::<[u8; 112], Rsp>(4096).unwrap().slots, 32);
    assert_eq!(Geometry::new::<[u8; 4096], Rsp>(4096), Err(RingError::PageTooSmall));
}

#[test]
fn requests_and_responses_round_trip_with_wrap() {
    let mut page = LocalPage::new(4096);
    let mut front = FrontRing::<Req, Rsp>::init(&mut page).unwrap();
    let mut back = BackRing::<Req, Rsp>::new(&page).unwrap();
    for round in 0..10u64 {
        for i in 0..100 {
            front.push_request(&mut page, &Req { id: round * 1000 + i, sector: i }).unwrap();
        }
        front.publish(&mut page);
        let mut n = 0;
        while let Some(r) = back.next_request(&page).unwrap() {
            back.push_response(&mut page, &Rsp { id: r.id, status: 0, pad: 0 }).unwrap();
            n += 1;
        }
        assert_eq!(n, 100);
        back.publish(&mut page);
        let mut ids = Vec::new();
        while let Some(r) = front.next_response(&page).unwrap() {
            ids.push(r.id);
        }
        assert_eq!(ids, (0..100).map(|i| round * 1000 + i).collect::<Vec<_>>());
    }
}

#[test]
fn front_cannot_overfill_and_notification_follows_event_index() {
    let mut page = LocalPage::new(4096);
    let mut front = FrontRing::<Req, Rsp>::init(&mut page).unwrap();
    for i in 0..128 {
        front.push_request(&mut page, &Req { id: i, sector: 0 }).unwrap();
    }
    assert_eq!(front.push_request(&mut page, &Req { id: 0, sector: 0 }), Err(RingError::Full));
    assert!(front.publish(&mut page), "back end asked for the first request");
    let mut back = BackRing::<Req, Rsp>::new(&page).unwrap();
    back.next_request(&page).unwrap().unwrap();
    assert_eq!(back.final_check_for_requests(&mut page), Ok(true));
}

#[test]
fn lying_request_producer_stops_the_back_end() {
    let mut page = LocalPage::new(4096);
    let mut back = BackRing::<Req, Rsp>::new(&page).unwrap();
    page.write_u32(REQ_PROD, 129);
    assert_eq!(back.next_request(&page), Err(RingError::IndexLie { prod: 129, cons: 0 }));
    assert!(back.is_stopped());
    page.write_u32(REQ_PROD, 1);
    assert_eq!(back.next_request(&page), Err(RingError::Stopped));
    assert_eq!(back.push_response(&mut page, &Rsp { id: 0, status: 0, pad: 0 }), Err(RingError::Stopped));
}

#[test]
fn request_is_copied_once_so_later_scribbles_do_not_change_it() {
    let mut page = LocalPage::new(4096);
    let mut front = FrontRing::<Req, Rsp>::init(&mut page).unwrap();
    let mut back = BackRing::<Req, Rsp>::new(&page).unwrap();
    front.push_request(&mut page, &Req { id: 1, sector: 42 }).unwrap();
    front.publish(&mut page);
    let r = back.next_request(&page).unwrap().unwrap();
    page.bytes[RING_OFFSET..RING_OFFSET + 16].fill(0xff);
    assert_eq!(r, Req { id: 1, sector: 42 });
    // The back end does not re-read a consumed slot.
    assert_eq!(back.next_request(&page), Ok(None));
}

#[test]
fn back_end_never_consumes_more_than_it_can_answer() {
    let mut page = LocalPage::new(4096);
    let mut back = BackRing::<Req, Rsp>::new(&page).unwrap();
    page.write_u32(REQ_PROD, 128);
    for _ in 0..128 {
        assert!(back.next_request(&page).unwrap().is_some());
    }
    // A front end that claims 128 more before any response is a liar only once it exceeds
    // the ring; at exactly the ring size the back end waits for its own responses.
    page.write_u32(REQ_PROD, 256);
    assert_eq!(back.next_request(&page), Ok(None));
    back.push_response(&mut page, &Rsp { id: 0, status: 0, pad: 0 }).unwrap();
    assert!(back.next_request(&page).unwrap().is_some());
}

#[test]
fn responses_without_requests_and_lying_response_producer() {
    let mut page = LocalPage::new(4096);
    let mut back = BackRing::<Req, Rsp>::new(&page).unwrap();
    assert_eq!(back.push_response(&mut page, &Rsp { id: 0, status: 0, pad: 0 }), Err(RingError::NoRequestOutstanding));
    let mut front = FrontRing::<Req, Rsp>::init(&mut page).unwrap();
    front.push_request(&mut page, &Req { id: 1, sector: 0 }).unwrap();
    front.publish(&mut page);
    page.write_u32(RSP_PROD, 2);
    assert_eq!(front.next_response(&page), Err(RingError::IndexLie { prod: 2, cons: 0 }));
    assert_eq!(front.next_response(&page), Err(RingError::Stopped));
}
