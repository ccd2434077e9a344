//! Measured runs, rounds and the whole benchmark session.
//!
//! A session ([`run_benchmark`]) reads the server's version, makes the keys
//! (and writes them first for `get` and `v3-range`), then runs one case per
//! workload and client count (workload by workload, each at every count), the
//! same drivers throughout. A case is `rounds` rounds. Within a
//! round every transport gets one warm-up job and one measured run, one
//! transport after the other, so noise on the machine (other processes, CPU
//! frequency, etcd compacting) hits every transport alike; each round starts
//! with the next transport in turn, so none is always first. Per transport the
//! round with the median requests/second is reported, whole (its latencies
//! and CPU figures belong to that same run).
//!
//! Around each measured run the bench reads its own CPU clock (every thread
//! of the process, so also a runtime's worker threads and what the client
//! spends in the kernel), the server's when the server's pid is known, and
//! the wall clock. Nothing is printed per request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::args::Options;
use super::cpu::CpuClock;
use super::latency::Latencies;
use super::raw_http::RawConnection;
use super::transport::{Driver, Errors, Job, Lane, RawDriver, Target, TransportKind};
use super::workload::{base64, unique_prefix, KeySpace, Workload};

/// One measured run of one transport.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// The round it belongs to, from 0.
    pub round: usize,
    /// Requests issued (successful or not).
    pub requests: usize,
    /// Wall time of the whole run.
    pub wall: Duration,
    /// Latencies of the successful requests.
    pub latencies: Latencies,
    /// CPU time the bench process spent during the run.
    pub client_cpu: Duration,
    /// CPU time the server spent during the run, when its pid is known.
    pub server_cpu: Option<Duration>,
    /// Failed requests.
    pub errors: Errors,
}

impl Measurement {
    /// Successful requests per second of wall time.
    pub fn requests_per_sec(&self) -> f64 {
        self.latencies.count() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Client CPU time per request, in microseconds.
    pub fn client_cpu_us_per_op(&self) -> f64 {
        per_op_us(self.client_cpu, self.requests)
    }

    /// Server CPU time per request, in microseconds.
    pub fn server_cpu_us_per_op(&self) -> Option<f64> {
        self.server_cpu.map(|cpu| per_op_us(cpu, self.requests))
    }
}

fn per_op_us(cpu: Duration, requests: usize) -> f64 {
    cpu.as_secs_f64() * 1e6 / requests.max(1) as f64
}

/// Every round of one transport.
#[derive(Debug, Clone)]
pub struct TransportResult {
    /// The transport, over plain HTTP or TLS.
    pub lane: Lane,
    /// One measurement per round, in round order.
    pub rounds: Vec<Measurement>,
}

impl TransportResult {
    /// The round with the median requests/second (the lower middle one for
    /// an even number of rounds).
    pub fn median(&self) -> &Measurement {
        let mut order: Vec<&Measurement> = self.rounds.iter().collect();
        order.sort_by(|a, b| a.requests_per_sec().total_cmp(&b.requests_per_sec()));
        order[(order.len() - 1) / 2]
    }
}

/// The CPU clocks read around each run.
#[derive(Debug, Clone, Copy)]
pub struct Clocks {
    /// The bench process.
    pub client: CpuClock,
    /// The server, when it runs on this machine with a known pid.
    pub server: Option<CpuClock>,
}

/// Reads `clock`, or zero when it cannot be read (the process is gone).
fn read_or_zero(clock: &CpuClock) -> Duration {
    clock.read().unwrap_or_default()
}

/// Runs `job` once on `driver`, reading every clock around it.
pub fn measure(
    driver: &mut dyn Driver,
    job: &Job,
    round: usize,
    clocks: &Clocks,
) -> Result<Measurement, String> {
    let client_before = read_or_zero(&clocks.client);
    let server_before = clocks.server.as_ref().map(read_or_zero);
    let start = Instant::now();
    let outcome = driver.run(job)?;
    let wall = start.elapsed();
    let server_after = clocks.server.as_ref().map(read_or_zero);
    let client_after = read_or_zero(&clocks.client);
    Ok(Measurement {
        round,
        requests: job.requests,
        wall,
        latencies: Latencies::merge(outcome.latencies),
        client_cpu: client_after.saturating_sub(client_before),
        server_cpu: server_before
            .zip(server_after)
            .map(|(before, after)| after.saturating_sub(before)),
        errors: outcome.errors,
    })
}

/// How many rounds and requests, for [`run_rounds`].
#[derive(Debug, Clone)]
pub struct RoundPlan {
    /// The measured job (its `requests` is `--total`).
    pub job: Job,
    /// Unmeasured requests before each measured run.
    pub warmup: usize,
    /// Rounds.
    pub rounds: usize,
}

/// Runs every round of one case, interleaving the transports (see the
/// [module docs](self)). `progress` gets one line per measured run.
pub fn run_rounds(
    drivers: &mut [(Lane, Box<dyn Driver>)],
    plan: &RoundPlan,
    clocks: &Clocks,
    progress: &mut dyn FnMut(String),
) -> Result<Vec<TransportResult>, String> {
    let mut results: Vec<TransportResult> = drivers
        .iter()
        .map(|(lane, _)| TransportResult {
            lane: *lane,
            rounds: Vec::new(),
        })
        .collect();
    let warmup = Job {
        requests: plan.warmup,
        ..plan.job.clone()
    };
    let n = drivers.len();
    for round in 0..plan.rounds {
        for turn in 0..n {
            let t = (round + turn) % n;
            let (lane, driver) = &mut drivers[t];
            if warmup.requests > 0 {
                let outcome = driver
                    .run(&warmup)
                    .map_err(|e| format!("{lane} warm-up: {e}"))?;
                if let Some(first) = &outcome.errors.first {
                    progress(format!(
                        "warning: {lane} warm-up: {} of {} requests failed; first: {first}",
                        outcome.errors.count, warmup.requests
                    ));
                }
            }
            let m = measure(driver.as_mut(), &plan.job, round, clocks)
                .map_err(|e| format!("{lane}: {e}"))?;
            let server = m
                .server_cpu_us_per_op()
                .map_or(String::new(), |us| format!(", server {us:.1} µs/op"));
            let errors = if m.errors.count > 0 {
                format!(", {} ERRORS", m.errors.count)
            } else {
                String::new()
            };
            progress(format!(
                "round {}/{}  {:<8} c={:<3} {:<13} {:>9.0} req/s  client {:.1} µs/op{server}{errors}",
                round + 1,
                plan.rounds,
                plan.job.workload.name(),
                plan.job.clients,
                lane.to_string(),
                m.requests_per_sec(),
                m.client_cpu_us_per_op(),
            ));
            results[t].rounds.push(m);
        }
    }
    Ok(results)
}

/// Everything a report shows.
#[derive(Debug, Clone)]
pub struct Report {
    /// The options the session ran with.
    pub options: Options,
    /// The endpoints measured (the plain ones).
    pub endpoints: Vec<String>,
    /// The TLS endpoints measured too, with `--tls`.
    pub tls_endpoints: Vec<String>,
    /// The pid of the server when the bench started it.
    pub server_pid: Option<u32>,
    /// The server's version (from `/version`).
    pub etcd_version: String,
    /// The directory holding the keys.
    pub prefix: String,
    /// The real key size (may exceed `--key-size` when that was too short).
    pub key_size: usize,
    /// How the client's CPU time was read.
    pub client_clock: String,
    /// How the server's CPU time was read.
    pub server_clock: Option<String>,
    /// The server's CPU use while idle, in microseconds per second.
    pub server_idle_us_per_sec: Option<f64>,
    /// One per workload and client count, in the order they ran.
    pub cases: Vec<CaseResult>,
}

/// The results of one workload at one client count.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// What every request did.
    pub workload: Workload,
    /// Requests in flight.
    pub clients: usize,
    /// Results, in the order of the transports.
    pub results: Vec<TransportResult>,
}

impl CaseResult {
    /// The `raw` baseline's median round over plain HTTP (`tls` false) or
    /// TLS, when it ran.
    pub fn baseline(&self, tls: bool) -> Option<&Measurement> {
        self.lane(Lane {
            kind: TransportKind::Raw,
            tls,
        })
    }

    /// The median round of `lane`, when it ran.
    pub fn lane(&self, lane: Lane) -> Option<&Measurement> {
        self.results
            .iter()
            .find(|r| r.lane == lane)
            .map(TransportResult::median)
    }
}

/// Runs a whole session against `endpoints`; see the [module docs](self).
/// With `tls` (the same server's TLS endpoints and their CA), every
/// transport also runs over TLS, in the same rounds. `server_pid` is the
/// server's pid when it runs on this machine (its CPU time is then measured
/// too).
pub fn run_benchmark(
    options: &Options,
    endpoints: &[String],
    tls: Option<&Target>,
    server_pid: Option<u32>,
    progress: &mut dyn FnMut(String),
) -> Result<Report, String> {
    let first = endpoints.first().ok_or("no endpoint")?;
    let etcd_version = server_version(first)?;
    let keyspace = KeySpace::new(
        &unique_prefix(),
        options.key_size,
        options.key_space,
        options.val_size,
    );

    let asked: Vec<TransportKind> = if options.transports.is_empty() {
        TransportKind::ALL.to_vec()
    } else {
        options.transports.clone()
    };
    let plain = Target::plain(endpoints);
    let targets: Vec<(bool, &Target)> = std::iter::once((false, &plain))
        .chain(tls.map(|t| (true, t)))
        .collect();
    let mut drivers: Vec<(Lane, Box<dyn Driver>)> = Vec::new();
    for &(over_tls, target) in &targets {
        for &kind in &asked {
            let lane = Lane {
                kind,
                tls: over_tls,
            };
            drivers.push((lane, kind.driver(target)?));
        }
    }

    let keys: Arc<[String]> = keyspace.keys.clone().into();
    let value: Arc<str> = keyspace.value.as_str().into();
    let mut writers: Vec<Workload> = Vec::new();
    for writer in options
        .workloads
        .iter()
        .filter_map(|w| w.needs_keys_written_by())
    {
        if !writers.contains(&writer) {
            writers.push(writer);
        }
    }
    for writer in writers {
        progress(format!(
            "writing {} keys under {} with {writer} for the reads",
            keys.len(),
            keyspace.prefix
        ));
        populate(endpoints, &keys, &value, writer)?;
    }

    let clocks = Clocks {
        client: CpuClock::this_process(),
        server: server_pid.map(CpuClock::of_pid),
    };
    let server_idle_us_per_sec = clocks.server.as_ref().map(|clock| {
        let window = Duration::from_millis(500);
        let before = read_or_zero(clock);
        std::thread::sleep(window);
        let idle = read_or_zero(clock).saturating_sub(before);
        idle.as_secs_f64() * 1e6 / window.as_secs_f64()
    });

    let mut cases = Vec::new();
    let mut failure = None;
    'cases: for &workload in &options.workloads {
        for &clients in &options.clients {
            progress(format!("--- {workload}, {clients} in flight ---"));
            let plan = RoundPlan {
                job: Job {
                    workload,
                    keys: Arc::clone(&keys),
                    value: Arc::clone(&value),
                    clients,
                    requests: options.total,
                },
                warmup: options.warmup,
                rounds: options.rounds,
            };
            match run_rounds(&mut drivers, &plan, &clocks, progress) {
                Ok(results) => cases.push(CaseResult {
                    workload,
                    clients,
                    results,
                }),
                Err(e) => {
                    failure = Some(format!("{workload}, {clients} in flight: {e}"));
                    break 'cases;
                }
            }
        }
    }
    drop(drivers);
    // Leave a shared server as it was (a throwaway one is killed anyway).
    if server_pid.is_none() {
        for v3 in [false, true] {
            if !options.workloads.iter().any(|w| w.is_v3() == v3) {
                continue;
            }
            let deleted = if v3 {
                delete_v3_prefix(first, &keyspace.prefix)
            } else {
                delete_dir(first, &keyspace.prefix)
            };
            if let Err(e) = deleted {
                progress(format!(
                    "warning: could not delete the {} keys under {}: {e}",
                    if v3 { "v3" } else { "v2" },
                    keyspace.prefix
                ));
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Report {
        options: options.clone(),
        endpoints: endpoints.to_vec(),
        tls_endpoints: tls.map(|t| t.endpoints.clone()).unwrap_or_default(),
        server_pid,
        etcd_version,
        prefix: keyspace.prefix.clone(),
        key_size: keyspace.key_size(),
        client_clock: clocks.client.to_string(),
        server_clock: clocks.server.map(|c| c.to_string()),
        server_idle_us_per_sec,
        cases,
    })
}

/// The `etcdserver` version from `GET /version`.
pub fn server_version(url: &str) -> Result<String, String> {
    let mut conn = RawConnection::connect(url).map_err(|e| format!("{url}: {e}"))?;
    let response = conn
        .get("/version")
        .map_err(|e| format!("{url}/version: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_slice(response.body).map_err(|e| format!("{url}/version: {e}"))?;
    json["etcdserver"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{url}/version: no etcdserver field in {json}"))
}

/// Writes every key (8 connections) with `writer` (`put` or `v3-put`), for
/// the read of the same API, and checks that one reads back.
fn populate(
    endpoints: &[String],
    keys: &Arc<[String]>,
    value: &Arc<str>,
    writer: Workload,
) -> Result<(), String> {
    let job = Job {
        workload: writer,
        keys: Arc::clone(keys),
        value: Arc::clone(value),
        clients: keys.len().min(8),
        requests: keys.len(),
    };
    let outcome = RawDriver::new(&Target::plain(endpoints))?.run(&job)?;
    if let Some(first) = outcome.errors.first {
        return Err(format!(
            "writing the keys: {} failed; first: {first}",
            outcome.errors.count
        ));
    }
    let mut conn = RawConnection::connect(&endpoints[0]).map_err(|e| e.to_string())?;
    let last = &keys[keys.len() - 1];
    let (what, json, written) = if writer.is_v3() {
        let what = format!("v3 range {last}");
        let body = format!("{{\"key\":\"{}\"}}", base64(last.as_bytes()));
        let response = conn
            .post_json("/v3/kv/range", &[body.as_bytes()])
            .map_err(|e| format!("{what}: {e}"))?;
        let json: serde_json::Value =
            serde_json::from_slice(response.body).map_err(|e| format!("{what}: {e}"))?;
        let written = json["kvs"][0]["value"].as_str() == Some(&base64(value.as_bytes()));
        (what, json, written)
    } else {
        let path = format!("/v2/keys{last}");
        let what = format!("GET {path}");
        let response = conn.get(&path).map_err(|e| format!("{what}: {e}"))?;
        let json: serde_json::Value =
            serde_json::from_slice(response.body).map_err(|e| format!("{what}: {e}"))?;
        let written = json["node"]["value"].as_str() == Some(value);
        (what, json, written)
    };
    if written {
        Ok(())
    } else {
        Err(format!("{what}: value not written back: {json}"))
    }
}

/// Deletes every v3 key under `dir` (`/v3/kv/deleterange` of the prefix `dir/`).
fn delete_v3_prefix(url: &str, dir: &str) -> Result<(), String> {
    let prefix = format!("{dir}/");
    let end = etcd_proto::v3::prefix_end(prefix.as_bytes());
    let body = format!(
        "{{\"key\":\"{}\",\"range_end\":\"{}\"}}",
        base64(prefix.as_bytes()),
        base64(&end)
    );
    let mut conn = RawConnection::connect(url).map_err(|e| e.to_string())?;
    let response = conn
        .post_json("/v3/kv/deleterange", &[body.as_bytes()])
        .map_err(|e| e.to_string())?;
    match response.status {
        200 => Ok(()),
        status => Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(response.body)
        )),
    }
}

/// Deletes the directory `dir` and everything below it.
fn delete_dir(url: &str, dir: &str) -> Result<(), String> {
    let mut conn = RawConnection::connect(url).map_err(|e| e.to_string())?;
    let response = conn
        .delete(&format!("/v2/keys{dir}?recursive=true"))
        .map_err(|e| e.to_string())?;
    match response.status {
        200 | 404 => Ok(()),
        status => Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(response.body)
        )),
    }
}
