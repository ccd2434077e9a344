//! The loop of one async worker task, shared by the `tokio` and `async-std`
//! transports: the async twin of
//! [`thread_worker`](super::transport::thread_worker).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use etcd_proto::{v2, v3, Operation};

use super::latency::Recorder;
use super::transport::{checked, expected_per_worker, Errors, Job, WorkerOutcome};
use super::workload::Workload;

/// The call the benchmark makes, on any async client: its `execute(op)`.
pub trait AsyncKv: Clone + Send + Sync + 'static {
    /// `client.execute(op)`.
    fn execute<O>(
        &self,
        op: O,
    ) -> impl Future<Output = Result<O::Output, etcd_proto::Error>> + Send
    where
        O: Operation + Send + 'static,
        O::Output: Send;
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
        let key: &str = &job.keys[i % job.keys.len()];
        let start = Instant::now();
        let value = &*job.value;
        let result = match job.workload {
            Workload::Put => checked(client.execute(v2::Write::new(key, value)).await),
            Workload::Get => checked(client.execute(v2::Read::new(key)).await),
            Workload::V3Put => checked(client.execute(v3::Put::new(key, value)).await),
            Workload::V3Range => checked(client.execute(v3::Get::new(key)).await),
        };
        let elapsed = start.elapsed();
        match result {
            Ok(()) => out.latencies.record(elapsed),
            Err(e) => out.errors.add(|| format!("{} {key}: {e}", job.workload)),
        }
    }
}
