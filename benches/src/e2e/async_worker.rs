//! The loop of one async worker task, shared by the `tokio` and `async-std`
//! transports: the async twin of
//! [`thread_worker`](super::transport::thread_worker).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::latency::Recorder;
use super::transport::{expected_per_worker, Errors, Job, WorkerOutcome};
use super::workload::Workload;

/// The two calls the benchmark makes, on any async client.
pub trait AsyncKv: Clone + Send + Sync + 'static {
    /// `client.set(key, value)`, the response dropped.
    fn put_value(&self, key: &str, value: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// `client.get(key)`, the response dropped.
    fn get_value(&self, key: &str) -> impl Future<Output = Result<(), String>> + Send;
}

/// Takes request numbers until `job.requests` are issued, timing each call
/// from just before it is made to just after its future completes (so time
/// spent waiting for the runtime to poll the task again counts, as a user of
/// the client would see it).
pub async fn task_worker<C: AsyncKv>(client: C, job: Job, next: &AtomicUsize) -> WorkerOutcome {
    let mut out = WorkerOutcome {
        latencies: Recorder::with_capacity(expected_per_worker(&job)),
        errors: Errors::default(),
    };
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= job.requests {
            return out;
        }
        let key = &job.keys[i % job.keys.len()];
        let start = Instant::now();
        let result = match job.workload {
            Workload::Put => client.put_value(key, &job.value).await,
            Workload::Get => client.get_value(key).await,
        };
        let elapsed = start.elapsed();
        match result {
            Ok(()) => out.latencies.record(elapsed),
            Err(e) => out.errors.add(|| format!("{} {key}: {e}", job.workload)),
        }
    }
}
