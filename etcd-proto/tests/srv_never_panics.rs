//! Property tests for DNS SRV discovery: the DNS parser and the
//! `SrvDiscovery` state machine survive any datagram without panicking (and
//! within bounded work), and whatever they accept yields usable endpoints.
//!
//! Case counts are kept small so the file runs in seconds; set
//! `PROPTEST_CASES=10000` for a longer run.

use etcd_proto::srv::{encode_srv_query, parse_message, SrvDiscovery};
use etcd_proto::Endpoint;
use proptest::prelude::*;

const ID: u16 = 0x5a5a;

/// A well-formed answer to discovery's first query: two SRV records, the
/// second target compressed against the first, plus an A record.
fn valid_answer() -> Vec<u8> {
    let mut discovery = SrvDiscovery::new("example.test", ID);
    let mut bytes = discovery.poll_transmit().unwrap();
    bytes[2] |= 0x80;
    bytes[7] = 2; // ANCOUNT
    bytes[11] = 1; // ARCOUNT
    let first_target = bytes.len() + 2 + 10 + 6;
    for (port, target) in [
        (2379u16, b"\x02m0\x07example\x04test\x00".to_vec()),
        (
            2380,
            [&b"\x02m1"[..], &[0xC0, (first_target + 3) as u8]].concat(),
        ),
    ] {
        bytes.extend_from_slice(&[0xC0, 12, 0, 33, 0, 1, 0, 0, 0, 60]);
        bytes.extend_from_slice(&((6 + target.len()) as u16).to_be_bytes());
        bytes.extend_from_slice(&[0, 1, 0, 1]);
        bytes.extend_from_slice(&port.to_be_bytes());
        bytes.extend_from_slice(&target);
    }
    bytes.extend_from_slice(&[0xC0, first_target as u8, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    bytes.extend_from_slice(&[127, 0, 0, 1]);
    bytes
}

fn feed(datagram: &[u8]) -> SrvDiscovery {
    let mut discovery = SrvDiscovery::new("example.test", ID);
    discovery.poll_transmit();
    discovery.handle_datagram(datagram);
    discovery
}

fn check_outcome(discovery: &SrvDiscovery) {
    match discovery.result() {
        None => assert!(discovery.current_name().is_some()),
        Some(Ok(urls)) => {
            assert!(!urls.is_empty());
            for url in urls {
                Endpoint::parse(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
            }
        }
        Some(Err(error)) => assert!(!error.to_string().is_empty()),
    }
}

#[test]
fn the_valid_answer_is_accepted() {
    let discovery = feed(&valid_answer());
    assert_eq!(
        discovery.result().unwrap().unwrap(),
        [
            "https://m0.example.test:2379",
            "https://m1.example.test:2380"
        ]
    );
    assert_eq!(discovery.records()[0].addresses.len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parser_survives_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(message) = parse_message(&bytes) {
            for q in &message.questions {
                prop_assert!(q.name.len() <= 255 * 4);
            }
        }
    }

    /// Arbitrary bodies behind a header that passes the ID and QR checks, so
    /// the whole parser and the decision logic run.
    #[test]
    fn discovery_survives_any_answer(
        flags_low in any::<u8>(),
        counts in proptest::collection::vec(any::<u8>(), 8),
        body in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut datagram = ID.to_be_bytes().to_vec();
        datagram.push(0x80);
        datagram.push(flags_low);
        datagram.extend_from_slice(&counts);
        datagram.extend_from_slice(&body);
        check_outcome(&feed(&datagram));
    }

    /// Valid answers with a few bytes changed, or cut short.
    #[test]
    fn discovery_survives_mutated_answers(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut datagram = valid_answer();
        for (at, byte) in edits {
            let i = at.index(datagram.len());
            datagram[i] = byte;
        }
        if truncate {
            datagram.truncate(cut.index(datagram.len()));
        }
        check_outcome(&feed(&datagram));
    }

    #[test]
    fn queries_round_trip(
        labels in proptest::collection::vec("[a-zA-Z0-9_-]{1,20}", 1..6),
        id in any::<u16>(),
    ) {
        let name = labels.join(".");
        let query = encode_srv_query(id, &name).unwrap();
        let message = parse_message(&query).unwrap();
        prop_assert_eq!(message.header.id, id);
        prop_assert_eq!(&message.questions[0].name, &name);
    }
}
