//! Cluster and maintenance calls: [`MemberList`] and [`Status`]. Compaction
//! is [`Compact`](super::Compact); the server version is the root
//! `/version` ([`v2::GetVersion`](crate::v2::GetVersion), served by every etcd).

use bytes::Bytes;
use serde::Deserialize;

use super::grpc::{self, pb};
use super::json::{self, WireHeader};
use super::types::ResponseHeader;
use super::unary::{grpc_form, Answer, GrpcForm, V3Unary};
use crate::error::Error;
use crate::operation::Replay;

/// One cluster member, as v3 reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    /// The member ID.
    pub id: u64,
    /// Its name (empty until it has started).
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
    /// Its client URLs (empty until it has started).
    pub client_urls: Vec<String>,
    /// True for a non-voting learner.
    pub is_learner: bool,
}

/// `POST /v3/cluster/member/list`: the cluster's members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberList;

/// What [`MemberList`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberListResponse {
    /// The header.
    pub header: ResponseHeader,
    /// Every member.
    pub members: Vec<Member>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireMemberList {
    header: WireHeader,
    members: Vec<WireMember>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireMember {
    #[serde(rename = "ID")]
    id: json::Uint,
    name: String,
    #[serde(rename = "peerURLs")]
    peer_urls: Vec<String>,
    #[serde(rename = "clientURLs")]
    client_urls: Vec<String>,
    #[serde(rename = "isLearner")]
    is_learner: bool,
}

impl V3Unary for MemberList {
    type Output = MemberListResponse;

    fn path(&self) -> &'static str {
        "/v3/cluster/member/list"
    }

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn body(&self) -> String {
        "{}".to_owned()
    }

    fn read(&self, answer: Answer<'_>) -> Result<MemberListResponse, Error> {
        let wire = answer.json::<WireMemberList>()?;
        Ok(MemberListResponse {
            header: wire.header.into(),
            members: wire
                .members
                .into_iter()
                .map(|m| Member {
                    id: m.id.0,
                    name: m.name,
                    peer_urls: m.peer_urls,
                    client_urls: m.client_urls,
                    is_learner: m.is_learner,
                })
                .collect(),
        })
    }

    fn grpc(&self) -> Option<GrpcForm> {
        grpc_form("/etcdserverpb.Cluster/MemberList", &pb::Empty {})
    }

    fn read_grpc(&self, answer: &http::Response<Bytes>) -> Result<MemberListResponse, Error> {
        let r: pb::MemberListResponse = grpc::parse_unary(answer)?;
        Ok(MemberListResponse {
            header: r.header.into(),
            members: r
                .members
                .into_iter()
                .map(|m| Member {
                    id: m.id,
                    name: m.name,
                    peer_urls: m.peer_urls,
                    client_urls: m.client_urls,
                    is_learner: m.is_learner,
                })
                .collect(),
        })
    }
}

/// `POST /v3/maintenance/status`: the answering member's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status;

/// What [`Status`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusResponse {
    /// The header (`member_id` is the member that answered).
    pub header: ResponseHeader,
    /// Its etcd version, e.g. `3.5.1`.
    pub version: String,
    /// The backend database size, in bytes.
    pub db_size: i64,
    /// The bytes of the database in use.
    pub db_size_in_use: i64,
    /// The leader's member ID (0: no leader).
    pub leader: u64,
    /// The raft index.
    pub raft_index: u64,
    /// The raft term.
    pub raft_term: u64,
    /// The raft applied index.
    pub raft_applied_index: u64,
    /// Alarms and errors the member reports.
    pub errors: Vec<String>,
    /// True for a learner.
    pub is_learner: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireStatus {
    header: WireHeader,
    version: String,
    #[serde(rename = "dbSize")]
    db_size: json::Int,
    #[serde(rename = "dbSizeInUse")]
    db_size_in_use: json::Int,
    leader: json::Uint,
    #[serde(rename = "raftIndex")]
    raft_index: json::Uint,
    #[serde(rename = "raftTerm")]
    raft_term: json::Uint,
    #[serde(rename = "raftAppliedIndex")]
    raft_applied_index: json::Uint,
    errors: Vec<String>,
    #[serde(rename = "isLearner")]
    is_learner: bool,
}

impl V3Unary for Status {
    type Output = StatusResponse;

    fn path(&self) -> &'static str {
        "/v3/maintenance/status"
    }

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn body(&self) -> String {
        "{}".to_owned()
    }

    fn read(&self, answer: Answer<'_>) -> Result<StatusResponse, Error> {
        let w = answer.json::<WireStatus>()?;
        Ok(StatusResponse {
            header: w.header.into(),
            version: w.version,
            db_size: w.db_size.0,
            db_size_in_use: w.db_size_in_use.0,
            leader: w.leader.0,
            raft_index: w.raft_index.0,
            raft_term: w.raft_term.0,
            raft_applied_index: w.raft_applied_index.0,
            errors: w.errors,
            is_learner: w.is_learner,
        })
    }

    fn grpc(&self) -> Option<GrpcForm> {
        grpc_form("/etcdserverpb.Maintenance/Status", &pb::Empty {})
    }

    fn read_grpc(&self, answer: &http::Response<Bytes>) -> Result<StatusResponse, Error> {
        let w: pb::StatusResponse = grpc::parse_unary(answer)?;
        Ok(StatusResponse {
            header: w.header.into(),
            version: w.version,
            db_size: w.db_size,
            db_size_in_use: w.db_size_in_use,
            leader: w.leader,
            raft_index: w.raft_index,
            raft_term: w.raft_term,
            raft_applied_index: w.raft_applied_index,
            errors: w.errors,
            is_learner: w.is_learner,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Operation;
    use bytes::Bytes;

    #[test]
    fn recorded_status_and_members_parse() {
        let status = Status
            .parse(http::Response::new(Bytes::from_static(br#"{"header":{"cluster_id":"8285018200366599220","member_id":"13020624618665206651","revision":"12","raft_term":"2"},"version":"3.5.1","dbSize":"20480","leader":"13020624618665206651","raftIndex":"1048","raftTerm":"2","raftAppliedIndex":"1048","dbSizeInUse":"16384"}"#)))
            .unwrap();
        assert_eq!(status.version, "3.5.1");
        assert_eq!(status.leader, 13020624618665206651);
        assert_eq!(status.db_size, 20480);
        let members = MemberList
            .parse(http::Response::new(Bytes::from_static(br#"{"header":{"cluster_id":"8285018200366599220","member_id":"13020624618665206651","raft_term":"2"},"members":[{"ID":"13020624618665206651","name":"member-0","peerURLs":["http://127.0.0.1:23791"],"clientURLs":["http://127.0.0.1:23790"]}]}"#)))
            .unwrap();
        assert_eq!(members.members[0].client_urls, ["http://127.0.0.1:23790"]);
        assert_eq!(members.members[0].id, 13020624618665206651);
    }
}
