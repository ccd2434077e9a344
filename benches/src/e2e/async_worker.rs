//! The loop of one async worker task, shared by the `tokio`, `async-std`
//! and `hyper` transports: the async twin of
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

/// One request of a job, as an async worker makes it: an etcd client's
/// `execute` of the workload's operation (every [`AsyncKv`]), or a bare
/// stack's hand-made request.
pub trait AsyncRequest: Send + Sync + 'static {
    /// Makes `job.workload`'s request for `key`; `Ok` on the expected answer.
    fn request(&self, job: &Job, key: &str) -> impl Future<Output = Result<(), String>> + Send;
}

impl<C: AsyncKv> AsyncRequest for C {
    async fn request(&self, job: &Job, key: &str) -> Result<(), String> {
        let value = &*job.value;
        match job.workload {
            Workload::Put => checked(self.execute(v2::Write::new(key, value)).await),
            Workload::Get => checked(self.execute(v2::Read::new(key)).await),
            Workload::V3Put => checked(self.execute(v3::Put::new(key, value)).await),
            Workload::V3Range => checked(self.execute(v3::Get::new(key)).await),
        }
        .map_err(|e| format!("{} {key}: {e}", job.workload))
    }
}

/// Takes request numbers until `job.requests` are issued, timing each call
/// from just before it is made to just after its future completes (so time
/// spent waiting for the runtime to poll the task again counts, as a user of
/// the client would see it).
pub async fn task_worker<C: AsyncRequest>(
    client: C,
    job: Job,
    next: &AtomicUsize,
) -> WorkerOutcome {
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
        let result = client.request(&job, key).await;
        let elapsed = start.elapsed();
        match result {
            Ok(()) => out.latencies.record(elapsed),
            Err(e) => out.errors.add(|| e),
        }
    }
}
