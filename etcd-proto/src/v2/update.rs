//! [`UpdateWith`]: the optimistic read-modify-write loop on one v2 key.
//!
//! Read the key (a quorum read), compute the new value with the caller's
//! function, write it only if nobody changed the key since (`prevIndex` of
//! the read, or `prevExist=false` when the key did not exist), and on a lost
//! race (errorCode 101, 105 or 100) start over after a short randomized
//! backoff, up to a limit of attempts. The result is the successful write.

use std::time::Instant;

use super::error::V2ErrorCode;
use super::keys::{Read, ReadOptions, Write, WriteOptions};
use super::response::KeysResponse;
use crate::call::Call;
use crate::cluster::Cluster;
use crate::error::{Error, UsageError};
use crate::flow::{Flow, Input, Step};

/// Attempts an update makes by default before giving up.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 100;

/// The read-modify-write flow; see the [module docs](self).
///
/// `f` gets the current value (`None` if the key does not exist) and returns
/// the value to write. It may run several times, once per attempt.
pub struct UpdateWith<F> {
    key: String,
    f: F,
    max_attempts: u32,
    attempt: u32,
    backoff: crate::backoff::Backoff,
    stage: Stage,
}

enum Stage {
    Reading(Call<Read>),
    Writing(Call<Write>),
    Backoff(Option<Instant>),
    Done(Option<Result<KeysResponse, Error>>),
}

impl<F> std::fmt::Debug for UpdateWith<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateWith")
            .field("key", &self.key)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl<F: FnMut(Option<&str>) -> String> UpdateWith<F> {
    /// Updates `key` with `f`. `seed`: random bits for the backoff jitter
    /// (contenders must not retry in step), drawn by the transport
    /// ([`Entropy::random`](crate::drive::Entropy::random)): the core draws
    /// no random numbers itself.
    pub fn new(key: impl Into<String>, f: F, seed: u64) -> Self {
        let key = key.into();
        let read = Self::read(&key);
        UpdateWith {
            key,
            f,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            attempt: 0,
            backoff: crate::backoff::Backoff::new(seed),
            stage: Stage::Reading(read),
        }
    }

    /// Gives up after `n` lost races (default [`DEFAULT_MAX_ATTEMPTS`]).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    fn read(key: &str) -> Call<Read> {
        Call::new(Read::new(key).options(ReadOptions::new().quorum(true)))
    }

    fn after_read(&mut self, result: Result<KeysResponse, Error>) -> Stage {
        let (current, index) = match result {
            Ok(read) if read.node.dir => {
                let key = self.key.clone();
                return Stage::Done(Some(Err(UsageError::DirectoryHasNoValue { key }.into())));
            }
            Ok(read) => (read.node.value, Some(read.node.modified_index)),
            Err(e) if e.is_key_not_found() => (None, None),
            Err(e) => return Stage::Done(Some(Err(e))),
        };
        let new = (self.f)(current.as_deref());
        let options = match index {
            Some(index) => WriteOptions::new().prev_index(index),
            None => WriteOptions::new().prev_exist(false),
        };
        Stage::Writing(Call::new(
            Write::new(self.key.clone(), new).options(options),
        ))
    }

    fn after_write(&mut self, result: Result<KeysResponse, Error>) -> Stage {
        let lost_race = result
            .as_ref()
            .err()
            .and_then(Error::as_v2)
            .is_some_and(|e| {
                matches!(
                    e.code,
                    V2ErrorCode::CompareFailed | V2ErrorCode::NodeExist | V2ErrorCode::KeyNotFound
                )
            });
        if !lost_race {
            return Stage::Done(Some(result));
        }
        self.attempt += 1;
        if self.attempt >= self.max_attempts {
            return Stage::Done(Some(result));
        }
        Stage::Backoff(None)
    }
}

impl<F: FnMut(Option<&str>) -> String> Flow for UpdateWith<F> {
    type Output = KeysResponse;

    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> Step<KeysResponse> {
        loop {
            let next = match &mut self.stage {
                Stage::Reading(call) => match call.poll(cluster, now) {
                    Step::Done(result) => self.after_read(result),
                    other => return other,
                },
                Stage::Writing(call) => match call.poll(cluster, now) {
                    Step::Done(result) => self.after_write(result),
                    other => return other,
                },
                Stage::Backoff(None) => {
                    Stage::Backoff(Some(now + self.backoff.pause(self.attempt)))
                }
                Stage::Backoff(Some(until)) if now < *until => return Step::Sleep(*until),
                Stage::Backoff(Some(_)) => Stage::Reading(Self::read(&self.key)),
                Stage::Done(result) => return crate::flow::finished(result),
            };
            self.stage = next;
        }
    }

    fn handle(&mut self, cluster: &mut Cluster, now: Instant, input: Input) {
        match (input, &mut self.stage) {
            (Input::Stop, _) => self.stage = Stage::Done(Some(crate::flow::stopped())),
            (input, Stage::Reading(call)) => call.handle(cluster, now, input),
            (input, Stage::Writing(call)) => call.handle(cluster, now, input),
            (_, Stage::Backoff(_) | Stage::Done(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{Reply, Sim};
    use bytes::Bytes;
    use std::time::Duration;

    fn answer(status: u16, body: &str) -> http::Response<Bytes> {
        let mut r = http::Response::new(Bytes::from(body.to_owned()));
        *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
        r
    }

    fn get(value: &str, index: u64) -> http::Response<Bytes> {
        answer(
            200,
            &format!(
                r#"{{"action":"get","node":{{"key":"/c","value":"{value}","modifiedIndex":{index},"createdIndex":1}}}}"#
            ),
        )
    }

    const LOST: &str =
        r#"{"errorCode":101,"message":"Compare failed","cause":"[5 != 6]","index":6}"#;

    /// Runs `flow` on the testkit, answering each request with the next
    /// scripted response.
    fn run<F: FnMut(Option<&str>) -> String>(
        flow: UpdateWith<F>,
        answers: Vec<http::Response<Bytes>>,
    ) -> (Vec<String>, Result<KeysResponse, Error>, u32) {
        let mut sim = Sim::scripted(&["http://127.0.0.1:2379"]);
        let replies = answers
            .into_iter()
            .map(|r| Reply::Answer(Duration::ZERO, r))
            .collect();
        let result = sim.script(flow, replies);
        let sent = sim
            .sent
            .iter()
            .map(|s| {
                format!(
                    "{} {} {}",
                    s.method,
                    s.uri,
                    String::from_utf8_lossy(&s.body)
                )
            })
            .collect();
        for (at, until) in &sim.sleeps {
            assert!(
                *until - *at <= Duration::from_millis(250),
                "a jittered retry"
            );
        }
        (sent, result, sim.sleeps.len() as u32)
    }

    #[test]
    fn a_lost_race_is_retried_with_the_fresh_value() {
        let flow = UpdateWith::new(
            "/c",
            |v: Option<&str>| (v.unwrap().parse::<u32>().unwrap() + 1).to_string(),
            7,
        );
        let set = r#"{"action":"compareAndSwap","node":{"key":"/c","value":"3","modifiedIndex":7,"createdIndex":1}}"#;
        let (sent, result, sleeps) = run(
            flow,
            vec![
                get("1", 5),
                answer(412, LOST),
                get("2", 6),
                answer(200, set),
            ],
        );
        assert_eq!(result.unwrap().node.value.as_deref(), Some("3"));
        assert_eq!(sleeps, 1);
        assert!(sent[0].contains("/v2/keys/c?quorum=true"), "{}", sent[0]);
        assert!(sent[1].ends_with("value=2&prevIndex=5"), "{}", sent[1]);
        assert!(sent[3].ends_with("value=3&prevIndex=6"), "{}", sent[3]);
    }

    #[test]
    fn a_missing_key_is_created_and_gives_up_after_the_limit() {
        let not_found = answer(
            404,
            r#"{"errorCode":100,"message":"Key not found","cause":"/c","index":3}"#,
        );
        let exists = r#"{"errorCode":105,"message":"Key already exists","cause":"/c","index":4}"#;
        let flow =
            UpdateWith::new("/c", |v: Option<&str>| v.unwrap_or("0").to_owned(), 7).max_attempts(2);
        let again = answer(
            404,
            r#"{"errorCode":100,"message":"Key not found","cause":"/c","index":4}"#,
        );
        let (sent, result, _) = run(
            flow,
            vec![not_found, answer(412, exists), again, answer(412, exists)],
        );
        assert!(sent[1].ends_with("value=0&prevExist=false"), "{}", sent[1]);
        assert_eq!(
            result.unwrap_err().as_v2().unwrap().code,
            V2ErrorCode::NodeExist
        );
    }
}
