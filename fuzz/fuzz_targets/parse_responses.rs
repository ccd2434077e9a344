//! Every response parser of the core, on fuzzer-chosen status, headers and
//! body, as gateway JSON or as a native gRPC answer (`grpc-status` and
//! `grpc-message` chosen, the body framed or not): none may panic, whatever
//! the bytes.
#![no_main]

use etcd_proto::{v2, v3, Operation};
use etcd_proto_fuzz::{response, Input};
use libfuzzer_sys::fuzz_target;

fn parse<O: Operation>(op: O, response: http::Response<bytes::Bytes>) {
    let _ = op.parse(response);
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let which = input.byte();
    let status = input.status();
    let mut head = Input::new(input.bytes(8));
    let grpc = input.byte();
    let mut body = input.rest().to_vec();
    if grpc & 1 == 1 && grpc & 2 == 2 {
        // A well-framed message, so the protobuf decoder sees the bytes.
        let len = (body.len() as u32).to_be_bytes();
        body.splice(0..0, [0, len[0], len[1], len[2], len[3]]);
    }
    let mut r = response(&mut head, status, body);
    if grpc & 1 == 1 {
        let headers = r.headers_mut();
        headers.insert("content-type", "application/grpc".parse().unwrap());
        let code =
            [0, 0, 0, 3, 5, 9, 11, 14, 16, u32::from(grpc >> 2)][usize::from(grpc >> 4) % 10];
        headers.insert("grpc-status", code.to_string().parse().unwrap());
        if grpc & 4 == 4 {
            headers.insert(
                "grpc-message",
                "etcdserver: mvcc: required revision has been compacted%E2%80"
                    .parse()
                    .unwrap(),
            );
        }
    }
    match which % 26 {
        0 => parse(v2::Read::new("/k"), r),
        1 => parse(v2::Write::new("/k", "v"), r),
        2 => parse(v2::Delete::new("/k"), r),
        3 => parse(v2::Members, r),
        4 => parse(v2::Machines, r),
        5 => parse(v2::GetVersion, r),
        6 => parse(v2::StatsSelf, r),
        7 => parse(v2::StatsLeader, r),
        8 => parse(v2::StatsStore, r),
        9 => parse(v2::auth::AuthRead::users(), r),
        10 => parse(v2::auth::AuthRead::roles(), r),
        11 => parse(v2::auth::AuthChange::enable(), r),
        12 => parse(v3::Get::new("k"), r),
        13 => parse(v3::Put::new("k", "v"), r),
        14 => parse(v3::Delete::new("k"), r),
        15 => parse(v3::Compact::new(5), r),
        16 => parse(v3::Txn::new(), r),
        17 => parse(v3::LeaseGrant::new(10), r),
        18 => parse(v3::LeaseRevoke(1), r),
        19 => parse(v3::LeaseTimeToLive::new(1).with_keys(), r),
        20 => parse(v3::LeaseLeases, r),
        21 => parse(v3::LeaseKeepAliveOnce(1), r),
        22 => parse(v3::MemberList, r),
        23 => parse(v3::Status, r),
        24 => parse(v3::Authenticate::new("u", "p"), r),
        _ => parse(v3::AuthQuery::users(), r),
    }
});
