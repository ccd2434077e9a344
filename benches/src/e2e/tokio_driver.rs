//! The `tokio` transport: one `etcd_tokio::Client` on a multi-thread tokio
//! runtime with 2 worker threads (this machine's core count), `clients`
//! spawned tasks. The runtime and the client live as long as the driver, so
//! pooled connections carry over from the warm-up to the measured run.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use etcd_proto::Operation;

use super::async_worker::{task_worker, AsyncKv, AsyncRequest};
use super::transport::{Driver, Job, JobOutcome, Target};

/// Worker threads of the runtime.
pub const WORKER_THREADS: usize = 2;

impl AsyncKv for etcd_tokio::Client {
    async fn execute<O>(&self, op: O) -> Result<O::Output, etcd_proto::Error>
    where
        O: Operation + Send + 'static,
        O::Output: Send,
    {
        etcd_tokio::Client::execute(self, op).await
    }
}

/// See the [module docs](self).
#[derive(Debug)]
pub struct TokioDriver {
    runtime: tokio::runtime::Runtime,
    client: etcd_tokio::Client,
}

/// The runtime every tokio-based transport runs its tasks on: multi-thread,
/// [`WORKER_THREADS`] workers, I/O and time enabled.
pub fn bench_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

/// Runs `job` on `runtime`: `job.clients` spawned tasks, each a
/// [`task_worker`] with a clone of `client`.
pub fn run_tasks<C: AsyncRequest + Clone>(
    runtime: &tokio::runtime::Runtime,
    client: C,
    job: &Job,
) -> Result<JobOutcome, String> {
    let next = Arc::new(AtomicUsize::new(0));
    runtime.block_on(async {
        let tasks: Vec<_> = (0..job.clients)
            .map(|_| {
                let (client, job, next) = (client.clone(), job.clone(), Arc::clone(&next));
                tokio::spawn(async move { task_worker(client, job, &next).await })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(task.await.map_err(|e| format!("worker task: {e}"))?);
        }
        Ok(outcomes.into_iter().collect())
    })
}

impl TokioDriver {
    /// Starts the runtime and builds the client (no I/O yet).
    pub fn new(target: &Target, grpc: bool) -> Result<TokioDriver, String> {
        let runtime = bench_runtime()?;
        let mut builder = target
            .endpoints_or_default()
            .into_iter()
            .fold(etcd_tokio::Client::builder(), |b, url| b.endpoint(url));
        if let Some(tls) = target.tls() {
            builder = builder.tls(tls);
        }
        if grpc {
            builder = builder.v3_encoding(etcd_tokio::v3::V3Encoding::Grpc);
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        Ok(TokioDriver { runtime, client })
    }
}

impl Driver for TokioDriver {
    fn run(&mut self, job: &Job) -> Result<JobOutcome, String> {
        run_tasks(&self.runtime, self.client.clone(), job)
    }
}

/// A driver for `target`; `grpc`: v3 over native gRPC.
pub fn driver(target: &Target, grpc: bool) -> Result<Box<dyn Driver>, String> {
    Ok(Box::new(TokioDriver::new(target, grpc)?))
}
