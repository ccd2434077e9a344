//! The HTTP stacks under the clients, used bare: the second baseline.
//!
//! `raw` is the ceiling of the machine: no HTTP library at all. The two
//! drivers here send the very same requests as `raw` through the HTTP stack
//! a client crate is built on, with nothing of etcd around it: no operation,
//! no flow, no JSON parsing, no failover. The gap between such a floor and
//! its client is what the client itself costs; the gap between the floor and
//! `raw` is what the HTTP stack costs, and no client built on it can close it.
//!
//! | transport | stack                                   | floor of           |
//! |-----------|-----------------------------------------|--------------------|
//! | `ureq`    | one `ureq::Agent`, shared by the threads | `etcd-blocking`    |
//! | `hyper`   | hyper-util's pooled client on the same 2-worker tokio runtime | `etcd-tokio` (and hyper's share of `etcd-async-std`) |
//!
//! Each reads the whole response body and checks the status, as `raw` does.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as PooledClient;
use hyper_util::rt::TokioExecutor;

use super::async_worker::AsyncRequest;
use super::tokio_driver::{bench_runtime, run_tasks};
use super::transport::{thread_worker, Driver, Job, JobOutcome, Target};
use super::workload::{base64, push_base64, Workload};

/// One request of a job, as `raw` writes it: method, URL, body and its type.
#[derive(Debug)]
struct BareRequest {
    method: http::Method,
    url: String,
    body: Option<(&'static str, Vec<u8>)>,
}

impl BareRequest {
    /// The request `job.workload` makes for `key` on `base_url`. `value_b64`
    /// is the job's value in base64 (the same for every request).
    fn new(job: &Job, base_url: &str, key: &str, value_b64: &[u8]) -> BareRequest {
        let v2_url = || format!("{base_url}/v2/keys{key}");
        match job.workload {
            Workload::Get => BareRequest {
                method: http::Method::GET,
                url: v2_url(),
                body: None,
            },
            Workload::Put => {
                // The value is plain alphanumerics: form-encoded as it is.
                let form = format!("value={}", job.value).into_bytes();
                BareRequest {
                    method: http::Method::PUT,
                    url: v2_url(),
                    body: Some(("application/x-www-form-urlencoded", form)),
                }
            }
            Workload::V3Put | Workload::V3Range => {
                let mut json = b"{\"key\":\"".to_vec();
                push_base64(&mut json, key.as_bytes());
                let path = if job.workload == Workload::V3Put {
                    json.extend_from_slice(b"\",\"value\":\"");
                    json.extend_from_slice(value_b64);
                    "/v3/kv/put"
                } else {
                    "/v3/kv/range"
                };
                json.extend_from_slice(b"\"}");
                BareRequest {
                    method: http::Method::POST,
                    url: format!("{base_url}{path}"),
                    body: Some(("application/json", json)),
                }
            }
        }
    }
}

/// Whether a bare request's answer is the one a successful call of
/// `workload` has (a v2 put may create, 201).
pub fn judge_status(workload: Workload, key: &str, status: u16, body: &[u8]) -> Result<(), String> {
    match (workload, status) {
        (Workload::Put, 200 | 201) | (_, 200) => Ok(()),
        (_, status) => Err(format!(
            "{workload} {key}: status {status}: {}",
            String::from_utf8_lossy(body)
        )),
    }
}

/// `ureq`: one agent (its own pool and TCP connector, default settings but
/// statuses not turned into errors) shared by every worker thread.
#[derive(Debug)]
pub struct UreqDriver {
    base_url: String,
    agent: ureq::Agent,
}

impl UreqDriver {
    /// An agent for the first of `target`'s endpoints (no I/O yet); over
    /// TLS, ureq's own rustls support with ring, trusting the target's CA.
    pub fn new(target: &Target) -> Result<UreqDriver, String> {
        let mut config = ureq::Agent::config_builder().http_status_as_error(false);
        if let Some(pem) = &target.ca_pem {
            let roots = ureq::tls::parse_pem(pem.as_bytes())
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                    _ => None,
                })
                .collect();
            let tls = ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::Rustls)
                .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)))
                .unversioned_rustls_crypto_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .build();
            config = config.tls_config(tls);
        }
        Ok(UreqDriver {
            base_url: target.endpoints_or_default().swap_remove(0),
            agent: ureq::Agent::new_with_config(config.build()),
        })
    }

    fn request(&self, job: &Job, key: &str, value_b64: &[u8]) -> Result<(), String> {
        let BareRequest { method, url, body } =
            BareRequest::new(job, &self.base_url, key, value_b64);
        let builder = http::Request::builder().method(method).uri(url);
        let response = match body {
            None => self.agent.run(builder.body(()).map_err(|e| e.to_string())?),
            Some((content_type, body)) => self.agent.run(
                builder
                    .header(http::header::CONTENT_TYPE, content_type)
                    .body(body)
                    .map_err(|e| e.to_string())?,
            ),
        };
        let mut response = response.map_err(|e| format!("{} {key}: {e}", job.workload))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_vec()
            .map_err(|e| format!("{} {key}: {e}", job.workload))?;
        judge_status(job.workload, key, status, &body)
    }
}

impl Driver for UreqDriver {
    fn run(&mut self, job: &Job) -> Result<JobOutcome, String> {
        let next = AtomicUsize::new(0);
        let value_b64 = base64(job.value.as_bytes());
        let this = &*self;
        Ok(std::thread::scope(|s| {
            let workers: Vec<_> = (0..job.clients)
                .map(|_| {
                    let (next, value_b64) = (&next, value_b64.as_bytes());
                    s.spawn(move || {
                        thread_worker(job, next, |key| this.request(job, key, value_b64))
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("worker panicked"))
                .collect()
        }))
    }
}

/// `hyper`: hyper-util's pooled client (the one `etcd-tokio` drives), tasks
/// on a 2-worker multi-thread runtime like the `tokio` transport's.
#[derive(Debug)]
pub struct HyperDriver {
    base_url: Arc<str>,
    runtime: tokio::runtime::Runtime,
    client: HyperClient,
}

/// hyper-util's pooled client on its TCP connector, over TLS by
/// hyper-rustls's connector around it (as `etcd-tokio` builds it).
type HyperClient = PooledClient<HttpsConnector<HttpConnector>, Full<Bytes>>;

impl HyperDriver {
    /// A client for the first of `target`'s endpoints (no I/O yet).
    pub fn new(target: &Target) -> Result<HyperDriver, String> {
        let runtime = bench_runtime()?;
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        let tls = target.tls().unwrap_or_default();
        let mut config = (*tls.client_config().map_err(|e| e.to_string())?).clone();
        // hyper-rustls offers ALPN itself, for the protocols enabled below.
        config.alpn_protocols.clear();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = PooledClient::builder(TokioExecutor::new()).build(connector);
        Ok(HyperDriver {
            base_url: target.endpoints_or_default().swap_remove(0).into(),
            runtime,
            client,
        })
    }
}

impl Driver for HyperDriver {
    fn run(&mut self, job: &Job) -> Result<JobOutcome, String> {
        let floor = HyperFloor {
            client: self.client.clone(),
            base_url: Arc::clone(&self.base_url),
            value_b64: base64(job.value.as_bytes()).into_bytes().into(),
        };
        run_tasks(&self.runtime, Arc::new(floor), job)
    }
}

/// What one `hyper` task sends with: the shared client, and what every
/// request of the job reuses.
struct HyperFloor {
    client: HyperClient,
    base_url: Arc<str>,
    value_b64: Arc<[u8]>,
}

impl AsyncRequest for Arc<HyperFloor> {
    async fn request(&self, job: &Job, key: &str) -> Result<(), String> {
        let BareRequest { method, url, body } =
            BareRequest::new(job, &self.base_url, key, &self.value_b64);
        let mut builder = http::Request::builder().method(method).uri(url);
        let body = match body {
            None => Bytes::new(),
            Some((content_type, body)) => {
                builder = builder.header(http::header::CONTENT_TYPE, content_type);
                Bytes::from(body)
            }
        };
        let request = builder.body(Full::new(body)).map_err(|e| e.to_string())?;
        let fail = |e: &dyn std::fmt::Display| format!("{} {key}: {e}", job.workload);
        let response = self.client.request(request).await.map_err(|e| fail(&e))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(&e))?
            .to_bytes();
        judge_status(job.workload, key, status, &body)
    }
}
