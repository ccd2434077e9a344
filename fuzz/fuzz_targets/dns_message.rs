//! The DNS message codec and the SRV discovery machine, on fuzzer-chosen
//! datagrams: no panic; a discovery that ends gives endpoints or an error.
#![no_main]

use etcd_proto::srv::{parse_message, SrvDiscovery};
use etcd_proto_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_message(data);
    let mut input = Input::new(data);
    let mut discovery = SrvDiscovery::new("example.test", input.u16());
    for _ in 0..8 {
        let Some(query) = discovery.poll_transmit() else {
            break;
        };
        assert!(
            parse_message(&query).is_ok(),
            "our own query does not parse"
        );
        if input.byte().is_multiple_of(5) {
            discovery.handle_timeout();
            continue;
        }
        // An answer to our query: its id and question, then fuzzer bytes.
        let mut datagram = query.clone();
        let tail = input.bytes(255);
        if !tail.is_empty() {
            datagram.truncate(input.below(datagram.len() + 1));
            datagram.extend_from_slice(tail);
        }
        discovery.handle_datagram(&datagram);
        if let Some(result) = discovery.result() {
            if let Ok(endpoints) = result {
                for endpoint in endpoints {
                    assert!(endpoint.starts_with("http://") || endpoint.starts_with("https://"));
                }
            }
            break;
        }
    }
});
