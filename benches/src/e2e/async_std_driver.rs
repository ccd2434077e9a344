//! The `async-std` transport: one `etcd_async_std::Client`, `clients` tasks
//! spawned on async-std's global executor (one thread per core by default;
//! `ASYNC_STD_THREAD_COUNT` changes that). The client lives as long as the
//! driver, so pooled connections carry over from the warm-up to the
//! measured run.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use etcd_proto::Operation;

use super::async_worker::{task_worker, AsyncKv};
use super::transport::{Driver, Job, JobOutcome, Target};

impl AsyncKv for etcd_async_std::Client {
    async fn execute<O>(&self, op: O) -> Result<O::Output, etcd_proto::Error>
    where
        O: Operation + Send + 'static,
        O::Output: Send,
    {
        etcd_async_std::Client::execute(self, op).await
    }
}

/// See the [module docs](self).
#[derive(Debug)]
pub struct AsyncStdDriver {
    client: etcd_async_std::Client,
}

impl AsyncStdDriver {
    /// Builds the client (no I/O yet).
    pub fn new(target: &Target, grpc: bool) -> Result<AsyncStdDriver, String> {
        let mut builder = target
            .endpoints_or_default()
            .into_iter()
            .fold(etcd_async_std::Client::builder(), |b, url| b.endpoint(url));
        if let Some(tls) = target.tls() {
            builder = builder.tls(tls);
        }
        if grpc {
            builder = builder.v3_encoding(etcd_async_std::v3::V3Encoding::Grpc);
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        Ok(AsyncStdDriver { client })
    }
}

impl Driver for AsyncStdDriver {
    fn run(&mut self, job: &Job) -> Result<JobOutcome, String> {
        let next = Arc::new(AtomicUsize::new(0));
        async_std::task::block_on(async {
            let tasks: Vec<_> = (0..job.clients)
                .map(|_| {
                    let (client, job, next) = (self.client.clone(), job.clone(), Arc::clone(&next));
                    async_std::task::spawn(async move { task_worker(client, job, &next).await })
                })
                .collect();
            let mut outcomes = Vec::with_capacity(tasks.len());
            for task in tasks {
                outcomes.push(task.await);
            }
            Ok(outcomes.into_iter().collect())
        })
    }
}

/// A driver for `target`; `grpc`: v3 over native gRPC.
pub fn driver(target: &Target, grpc: bool) -> Result<Box<dyn Driver>, String> {
    Ok(Box::new(AsyncStdDriver::new(target, grpc)?))
}
