//! Host tests of the netif layouts and the back end's checks, with hostile chains.

use super::*;
use crate::ring::generic::Geometry;

fn req(gref: u32, offset: u16, flags: u16, id: u16, size: u16) -> NetifTxRequest {
    NetifTxRequest { gref, offset, flags, id, size }
}

fn extra(kind: u8, flags: u8) -> NetifTxRequest {
    let e = NetifExtraInfo { kind, flags, data: [0; 6] };
    let mut r = NetifTxRequest::default();
    r.as_mut_bytes()[..8].copy_from_slice(e.as_bytes());
    r
}

/// Gathers from a list, as the ring would give them.
fn gather(reqs: &[NetifTxRequest]) -> Result<Option<TxSlots>, String> {
    let mut it = reqs.iter().copied();
    gather_tx(&mut || Ok(it.next()))
}

fn one(reqs: &[NetifTxRequest]) -> TxVerdict {
    check_tx(&gather(reqs).unwrap().unwrap())
}

#[test]
fn rings_have_xens_geometry() {
    // 256 slots each in a page, as Linux's NET_TX_RING_SIZE / NET_RX_RING_SIZE.
    let tx = Geometry::new::<NetifTxRequest, NetifTxResponse>(4096).unwrap();
    assert_eq!((tx.slots, tx.slot_size), (256, 12));
    let rx = Geometry::new::<NetifRxRequest, NetifRxResponse>(4096).unwrap();
    assert_eq!((rx.slots, rx.slot_size), (256, 8));
}

#[test]
fn a_one_slot_frame_is_accepted() {
    match one(&[req(7, 100, NETTXF_CSUM_BLANK, 3, 60)]) {
        TxVerdict::Frame(f) => {
            assert_eq!(f.pieces, [Piece { gref: 7, offset: 100, len: 60 }]);
            assert_eq!(f.len, 60);
            assert!(f.csum_blank);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_chain_is_split_as_netback_splits_it() {
    // Linux's netfront splits a linear skb at a page boundary: first slot 1000 bytes of a
    // 1514-byte frame, the second 514.
    let reqs = [req(1, 3096, NETTXF_MORE_DATA, 1, 1514), req(2, 0, 0, 2, 514)];
    let tx = gather(&reqs).unwrap().unwrap();
    assert_eq!(tx.slots.len(), 2);
    match check_tx(&tx) {
        TxVerdict::Frame(f) => assert_eq!(f.pieces, [Piece { gref: 1, offset: 3096, len: 1000 }, Piece { gref: 2, offset: 0, len: 514 }]),
        other => panic!("{other:?}"),
    }
    let rsp = tx_responses(&tx, NETIF_RSP_OKAY);
    assert_eq!(rsp, [NetifTxResponse { id: 1, status: 0 }, NetifTxResponse { id: 2, status: 0 }]);
}

#[test]
fn extras_are_consumed_and_answered_null() {
    let reqs = [req(1, 0, NETTXF_EXTRA_INFO, 9, 100), extra(XEN_NETIF_EXTRA_TYPE_HASH, 0)];
    let tx = gather(&reqs).unwrap().unwrap();
    assert_eq!(tx.extras, 1);
    assert!(matches!(check_tx(&tx), TxVerdict::Frame(_)));
    let rsp = tx_responses(&tx, NETIF_RSP_OKAY);
    assert_eq!(rsp[0], NetifTxResponse { id: 9, status: NETIF_RSP_OKAY });
    assert_eq!(rsp[1].status, NETIF_RSP_NULL);
    // A multicast-list change is answered without a frame.
    assert_eq!(one(&[req(1, 0, NETTXF_EXTRA_INFO, 9, 0), extra(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, 0)]), TxVerdict::Control);
}

#[test]
fn hostile_chains_are_fatal() {
    // An extra that is missing, or of no type.
    assert!(gather(&[req(1, 0, NETTXF_EXTRA_INFO, 1, 100)]).is_err());
    assert!(gather(&[req(1, 0, NETTXF_EXTRA_INFO, 1, 100), extra(0, 0)]).is_err());
    assert!(gather(&[req(1, 0, NETTXF_EXTRA_INFO, 1, 100), extra(XEN_NETIF_EXTRA_TYPE_MAX, 0)]).is_err());
    // Extras that never end.
    let endless: alloc::vec::Vec<_> = core::iter::once(req(1, 0, NETTXF_EXTRA_INFO, 1, 100)).chain(core::iter::repeat_n(extra(XEN_NETIF_EXTRA_TYPE_HASH, XEN_NETIF_EXTRA_FLAG_MORE), 10)).collect();
    assert!(gather(&endless).is_err());
    // A chain past what was produced, or longer than 18 slots.
    assert!(gather(&[req(1, 0, NETTXF_MORE_DATA, 1, 100)]).is_err());
    let long: alloc::vec::Vec<_> = core::iter::repeat_n(req(1, 0, NETTXF_MORE_DATA, 1, 10), 30).collect();
    let e = gather(&long).unwrap_err();
    assert!(e.contains("18"), "{e}");
    // Exactly 18 slots is allowed.
    let mut ok: alloc::vec::Vec<_> = core::iter::repeat_n(req(1, 0, NETTXF_MORE_DATA, 1, 10), 17).collect();
    ok[0].size = 14 + 17 * 10;
    ok.push(req(1, 0, 0, 1, 10));
    assert!(matches!(one(&ok), TxVerdict::Frame(f) if f.len == 184 && f.pieces.len() == 18));
    // GSO is not offered.
    assert!(matches!(one(&[req(1, 0, NETTXF_EXTRA_INFO, 1, 100), extra(XEN_NETIF_EXTRA_TYPE_GSO, 0)]), TxVerdict::Fatal(_)));
}

#[test]
fn slots_crossing_pages_and_giants_are_fatal() {
    assert!(matches!(one(&[req(1, 4000, 0, 1, 200)]), TxVerdict::Fatal(_)));
    assert!(matches!(one(&[req(1, 0, NETTXF_MORE_DATA, 1, 300), req(2, 4095, 0, 2, 2)]), TxVerdict::Fatal(_)));
    // Past the MTU.
    assert!(matches!(one(&[req(1, 0, 0, 1, MAX_FRAME as u16 + 1)]), TxVerdict::Fatal(w) if w.contains("MTU")));
    assert!(matches!(one(&[req(1, 0, 0, 1, MAX_FRAME as u16)]), TxVerdict::Frame(_)));
    // The largest offset with a whole page: fine at 0, fatal past it.
    assert!(matches!(one(&[req(1, 4096 - 60, 0, 1, 60)]), TxVerdict::Frame(_)));
    assert!(matches!(one(&[req(1, u16::MAX, 0, 1, 60)]), TxVerdict::Fatal(_)));
}

#[test]
fn runts_and_lying_sizes_are_dropped() {
    assert!(matches!(one(&[req(1, 0, 0, 1, 13)]), TxVerdict::Drop(_)));
    assert!(matches!(one(&[req(1, 0, 0, 1, 0)]), TxVerdict::Drop(_)));
    // Later slots hold more than the frame.
    assert!(matches!(one(&[req(1, 0, NETTXF_MORE_DATA, 1, 100), req(2, 0, 0, 2, 200)]), TxVerdict::Drop(_)));
    // The first slot keeps less than an Ethernet header.
    assert!(matches!(one(&[req(1, 0, NETTXF_MORE_DATA, 1, 100), req(2, 0, 0, 2, 90)]), TxVerdict::Drop(_)));
    let tx = gather(&[req(1, 0, 0, 4, 13)]).unwrap().unwrap();
    assert_eq!(tx_responses(&tx, NETIF_RSP_ERROR), [NetifTxResponse { id: 4, status: NETIF_RSP_ERROR }]);
}

#[test]
fn nothing_waiting_is_none() {
    assert_eq!(gather(&[]).unwrap(), None);
}

#[test]
fn macs_parse_and_print() {
    let m = Mac::parse("00:16:3E:00:00:0a").unwrap();
    assert_eq!(m.0, [0, 0x16, 0x3e, 0, 0, 10]);
    assert_eq!(alloc::format!("{m}"), "00:16:3e:00:00:0a");
    for bad in ["", "00:16:3e:00:00", "00:16:3e:00:00:0a:1", "0:16:3e:00:00:0a", "00:16:3e:00:00:zz", "00-16-3e-00-00-0a"] {
        assert_eq!(Mac::parse(bad), None, "{bad}");
    }
    assert!(Mac::BROADCAST.is_group());
    assert!(Mac([1, 0, 0x5e, 0, 0, 1]).is_group());
    assert!(!m.is_group());
}
