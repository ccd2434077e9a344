//! Cluster information over the v2 API: version, machines, members, leader, stats.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use serde::Deserialize;

use super::response::{error_response, json};
use crate::call::Call;
use crate::cluster::Cluster;
use crate::error::{Error, MalformedResponse, UsageError};
use crate::flow::{Flow, Input, Step};
use crate::operation::{empty_request, Api, Operation, Replay, Target};

fn get(target: &Target<'_>, v2_path: &str) -> Result<http::Request<Bytes>, UsageError> {
    Ok(empty_request(http::Method::GET, target.v2_uri(v2_path)?))
}

/// The body of a 2xx response, or the error a non-2xx one reports.
fn success_body(response: http::Response<Bytes>) -> Result<(u16, Bytes), Error> {
    let status = response.status().as_u16();
    let body = response.into_body();
    if (200..300).contains(&status) {
        Ok((status, body))
    } else {
        Err(error_response(status, &body))
    }
}

/// Server and cluster versions, from `GET /version`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VersionInfo {
    /// The member's etcd version, e.g. `3.5.1`.
    #[serde(rename = "etcdserver")]
    pub server: String,
    /// The cluster's version, e.g. `3.5.0`.
    #[serde(rename = "etcdcluster")]
    pub cluster: String,
}

/// Read the server and cluster versions (`GET /version`, outside the v2 prefix).
#[derive(Debug, Clone, Copy, Default)]
pub struct GetVersion;

impl Operation for GetVersion {
    type Output = VersionInfo;

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn api(&self) -> Api {
        Api::V2
    }

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        Ok(empty_request(
            http::Method::GET,
            target.root_uri("/version")?,
        ))
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<VersionInfo, Error> {
        let (status, body) = success_body(response)?;
        json(status, &body)
    }
}

/// The client URLs of the cluster's members (`GET /v2/machines`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Machines;

impl Operation for Machines {
    type Output = Vec<String>;

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn api(&self) -> Api {
        Api::V2
    }

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        get(target, "/machines")
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<Vec<String>, Error> {
        let (status, body) = success_body(response)?;
        let text = std::str::from_utf8(&body)
            .map_err(|_| MalformedResponse::new(status, "machine list is not UTF-8", &body))?;
        Ok(text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

/// A cluster member as `/v2/members` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The member ID, in hex.
    pub id: String,
    /// The member's name (empty until it has started).
    #[serde(default)]
    pub name: String,
    /// URLs its peers reach it on.
    #[serde(default, rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    /// URLs clients reach it on.
    #[serde(default, rename = "clientURLs")]
    pub client_urls: Vec<String>,
}

/// List the cluster's members (`GET /v2/members`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Members;

impl Operation for Members {
    type Output = Vec<Member>;

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn api(&self) -> Api {
        Api::V2
    }

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        get(target, "/members")
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<Vec<Member>, Error> {
        #[derive(Deserialize)]
        struct Body {
            members: Vec<Member>,
        }
        let (status, body) = success_body(response)?;
        Ok(json::<Body>(status, &body)?.members)
    }
}

/// The answering member's own statistics (`GET /v2/stats/self`).
#[derive(Debug, Clone, PartialEq)]
pub struct SelfStats {
    /// The member's name.
    pub name: String,
    /// The member's ID, in hex.
    pub id: String,
    /// Its raft state, e.g. `StateLeader` or `StateFollower`.
    pub state: String,
    /// The ID of the leader it follows (its own ID on the leader).
    pub leader_id: String,
    /// Everything etcd reported.
    pub raw: serde_json::Value,
}

/// Read the answering member's statistics (`GET /v2/stats/self`).
#[derive(Debug, Clone, Copy, Default)]
pub struct StatsSelf;

impl Operation for StatsSelf {
    type Output = SelfStats;

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn api(&self) -> Api {
        Api::V2
    }

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        get(target, "/stats/self")
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<SelfStats, Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct LeaderInfo {
            #[serde(default)]
            leader: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            #[serde(default)]
            name: String,
            #[serde(default)]
            id: String,
            #[serde(default)]
            state: String,
            #[serde(default)]
            leader_info: Option<LeaderInfo>,
        }
        let (status, body) = success_body(response)?;
        let raw: serde_json::Value = json(status, &body)?;
        let typed = Body::deserialize(&raw)
            .map_err(|e| MalformedResponse::new(status, format!("unexpected stats: {e}"), &body))?;
        Ok(SelfStats {
            name: typed.name,
            id: typed.id,
            state: typed.state,
            leader_id: typed.leader_info.map(|l| l.leader).unwrap_or_default(),
            raw,
        })
    }
}

/// The leader's view of its followers (`GET /v2/stats/leader`; only the leader answers).
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderStats {
    /// The leader's ID.
    pub leader: String,
    /// Per follower ID: successful and failed append requests.
    pub followers: BTreeMap<String, FollowerCounts>,
    /// Everything etcd reported (latencies included).
    pub raw: serde_json::Value,
}

/// Raft append counts for one follower.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct FollowerCounts {
    /// Successful appends.
    #[serde(default)]
    pub success: u64,
    /// Failed appends.
    #[serde(default)]
    pub fail: u64,
}

/// Read the leader's statistics (`GET /v2/stats/leader`).
#[derive(Debug, Clone, Copy, Default)]
pub struct StatsLeader;

impl Operation for StatsLeader {
    type Output = LeaderStats;

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn api(&self) -> Api {
        Api::V2
    }

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        get(target, "/stats/leader")
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<LeaderStats, Error> {
        #[derive(Deserialize)]
        struct Follower {
            #[serde(default)]
            counts: FollowerCounts,
        }
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            leader: String,
            #[serde(default)]
            followers: BTreeMap<String, Follower>,
        }
        let (status, body) = success_body(response)?;
        let raw: serde_json::Value = json(status, &body)?;
        let typed = Body::deserialize(&raw)
            .map_err(|e| MalformedResponse::new(status, format!("unexpected stats: {e}"), &body))?;
        Ok(LeaderStats {
            leader: typed.leader,
            followers: typed
                .followers
                .into_iter()
                .map(|(id, f)| (id, f.counts))
                .collect(),
            raw,
        })
    }
}

/// Read the v2 store's operation counters (`GET /v2/stats/store`), e.g.
/// `getsSuccess`, `setsFail`, `watchers`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatsStore;

impl Operation for StatsStore {
    type Output = BTreeMap<String, serde_json::Value>;

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn api(&self) -> Api {
        Api::V2
    }

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        get(target, "/stats/store")
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<Self::Output, Error> {
        let (status, body) = success_body(response)?;
        json(status, &body)
    }
}

/// The flow behind `leader()`: read `/v2/stats/self` for the leader's ID, then
/// `/v2/members` for that member.
#[derive(Debug)]
pub struct Leader {
    stage: LeaderStage,
}

#[derive(Debug)]
enum LeaderStage {
    Stats(Call<StatsSelf>),
    Members {
        leader_id: String,
        call: Call<Members>,
    },
    Done(Option<Result<Member, Error>>),
}

impl Leader {
    /// A flow that finds the current leader.
    pub fn new() -> Self {
        Leader {
            stage: LeaderStage::Stats(Call::new(StatsSelf)),
        }
    }
}

impl Default for Leader {
    fn default() -> Self {
        Leader::new()
    }
}

impl Flow for Leader {
    type Output = Member;

    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> Step<Member> {
        loop {
            match &mut self.stage {
                LeaderStage::Stats(call) => match call.poll(cluster, now) {
                    Step::Done(Ok(stats)) if stats.leader_id.is_empty() => {
                        self.stage = LeaderStage::Done(Some(Err(MalformedResponse::new(
                            200,
                            "the member reports no leader",
                            b"",
                        )
                        .into())));
                    }
                    Step::Done(Ok(stats)) => {
                        self.stage = LeaderStage::Members {
                            leader_id: stats.leader_id,
                            call: Call::new(Members),
                        };
                    }
                    Step::Done(Err(e)) => self.stage = LeaderStage::Done(Some(Err(e))),
                    Step::Transmit(t) => return Step::Transmit(t),
                    Step::Sleep(t) => return Step::Sleep(t),
                },
                LeaderStage::Members { leader_id, call } => match call.poll(cluster, now) {
                    Step::Done(result) => {
                        let leader_id = std::mem::take(leader_id);
                        let found = result.and_then(|members| {
                            members
                                .into_iter()
                                .find(|m| m.id == leader_id)
                                .ok_or_else(|| {
                                    MalformedResponse::new(
                                        200,
                                        format!("leader {leader_id} is not in the member list"),
                                        b"",
                                    )
                                    .into()
                                })
                        });
                        self.stage = LeaderStage::Done(Some(found));
                    }
                    Step::Transmit(t) => return Step::Transmit(t),
                    Step::Sleep(t) => return Step::Sleep(t),
                },
                LeaderStage::Done(result) => return crate::flow::finished(result),
            }
        }
    }

    fn handle(&mut self, cluster: &mut Cluster, now: Instant, input: Input) {
        match (input, &mut self.stage) {
            (Input::Stop, _) => self.stage = LeaderStage::Done(Some(crate::flow::stopped())),
            (input, LeaderStage::Stats(call)) => call.handle(cluster, now, input),
            (input, LeaderStage::Members { call, .. }) => call.handle(cluster, now, input),
            (_, LeaderStage::Done(_)) => {}
        }
    }
}
