//! Sessions — a v3 lease kept alive in the background — and the guards of
//! the v3 [lock](crate::v3::lock) and [election](crate::v3::election)
//! recipes built on them (Go's `concurrency.Session`, `Mutex`, `Election`).
//!
//! # Sessions
//!
//! A [`Session`] (blocking client) or [`AsyncSession`] (async client) grants
//! a lease (or adopts an existing one) and keeps it alive with the
//! [`KeepAlive`] flow, run in the background through
//! the transport's `spawn` (a thread, or a task on the client's runtime): a
//! renewal every third of the TTL, retries every 500 ms while the lease may
//! still be alive; between them it sleeps, and wakes early only to stop. **When the keep-alive finds the lease gone** (etcd says
//! so, or its TTL ran out before a renewal got through) **the session is
//! lost**: [`is_lost`](Session::is_lost) turns true, [`lost_reason`](Session::lost_reason)
//! says why, callbacks registered with [`on_lost`](Session::on_lost) run,
//! [`wait_lost`](Session::wait_lost) (blocking) and [`lost`](AsyncSession::lost)
//! (a future) return. Every key attached to the lease — lock and election
//! keys included — is then gone.
//!
//! A session is a cheap handle: clones share the lease, and the guards of
//! the locks and elections made through it hold a clone.
//!
//! - [`close`](Session::close) stops the keep-alive and revokes the lease
//!   (Go's `Session.Close`): its keys are deleted at once.
//! - [`stop_keepalive`](Session::stop_keepalive) stops the keep-alive only
//!   (Go's `Orphan`): the lease runs out one TTL later.
//! - **Dropping the last handle** stops the keep-alive; a blocking
//!   [`Session`] also revokes the lease (best effort, like the v2 lock guard
//!   that releases on drop). An [`AsyncSession`] cannot wait in `Drop`: its
//!   lease runs out one TTL later — close it with `close().await` to free
//!   its keys at once.
//!
//! # Locks and elections
//!
//! [`Session::lock`] / [`AsyncSession::lock`] run [`AcquireMutex`] and
//! return a guard ([`MutexGuard`], [`AsyncMutexGuard`]) exposing the key and
//! the fencing token. Release is guarded by the key's create revision. A
//! blocking guard releases on drop; an async one is released with
//! `release().await` (dropped unreleased, its key goes with the session's
//! lease). [`Hold::MaxTtl`] stops the session's keep-alive at acquisition:
//! the whole session's lease then runs out about one TTL later — give such
//! a lock a session of its own (what [`MutexGuard::with_lock`] does).
//!
//! **A lost session ends a wait.** An acquisition through a session already
//! lost fails at once with [`MutexError::SessionExpired`]. One still
//! waiting when the session reports its lease lost ends then, with the same
//! error (the key went with the lease: nothing to clean up): an async one
//! at once, a blocking one after the read of the watch it is blocked in
//! (a chunk, or the watch's idle timeout at most).
//!
//! # One implementation
//!
//! The sessions, guards and their waits are written once, as the async
//! types. The blocking types are those run through
//! [`Ready`] (see [`crate::drive::ready`]), plus the
//! one thing only a blocking handle can do: wait in `Drop` (revoke the
//! lease, release the lock, resign).
//!
//! [`Session::campaign`] / [`AsyncSession::campaign`] campaign in an
//! election and return a [`LeaderGuard`] / [`AsyncLeaderGuard`] that can
//! proclaim values and resign.
//!
//! Guards made by the client's `lock`, `with_lock` and `campaign` methods
//! own a session made for them: releasing (or, blocking, dropping) the guard
//! closes that session too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::drive::{block_on, drive, run_stream, AsyncTransport, Ready, Transport};
use crate::error::Error;
use crate::v3::lock::DEFAULT_SESSION_TTL;
use crate::v3::{
    AcquireMutex, Election, HeldMutex, Hold, KeepAlive, Leadership, LeaseGrant, LeaseKeepAliveOnce,
    LeaseRevoke, MutexError, MutexOptions, ResponseHeader, V3ErrorKind,
};

pub use crate::keeper::Lost;
use crate::keeper::{keep, Shared};

/// The keep-alive of lease `lease`, granted (or last renewed) with `ttl`
/// seconds just now.
fn keeper(lease: i64, ttl: i64) -> KeepAlive {
    KeepAlive::new(lease).granted_ttl(ttl)
}

/// [`MutexError::SessionExpired`] for `key` if the session's lease is lost.
fn still_held(shared: &Shared, key: &[u8]) -> Result<(), Error> {
    if shared.is_lost() {
        return Err(session_expired(key));
    }
    Ok(())
}

/// A revoke of a lease already gone is no failure.
fn revoked(result: Result<ResponseHeader, Error>) -> Result<(), Error> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if lease_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

fn lease_not_found(error: &Error) -> bool {
    error
        .as_v3()
        .is_some_and(|v| v.kind == V3ErrorKind::LeaseNotFound)
}

fn session_expired(key: &[u8]) -> Error {
    MutexError::SessionExpired {
        key: String::from_utf8_lossy(key).into_owned(),
    }
    .into()
}

/// Runs an acquisition, ended early with [`MutexError::SessionExpired`] if
/// the session reports its lease lost meanwhile: the waiter's key went with
/// the lease, so dropping the flow (and its watch) leaves nothing behind.
async fn unless_lost<S, R>(
    session: &AsyncSession<S>,
    key: Vec<u8>,
    acquisition: impl std::future::Future<Output = Result<R, Error>>,
) -> Result<R, Error> {
    use std::future::Future as _;
    still_held(&session.inner.shared, &key)?;
    let mut acquisition = std::pin::pin!(acquisition);
    let mut lost = session.lost();
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(result) = acquisition.as_mut().poll(cx) {
            return std::task::Poll::Ready(result);
        }
        match std::pin::Pin::new(&mut lost).poll(cx) {
            std::task::Poll::Ready(_) => std::task::Poll::Ready(Err(session_expired(&key))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    })
    .await
}

/// The error a try-lock's busy answer is, for `try_*` methods to turn into `None`.
fn is_busy(error: &Error) -> bool {
    matches!(error, Error::Mutex(MutexError::Busy { .. }))
}

/// The session options `with_lock(timeout, ttl)` means: no TTL keeps the
/// lease alive while held (a 60 s session), a TTL is a hard maximum.
fn with_lock_options(timeout: Option<Duration>, ttl: Option<i64>) -> MutexOptions {
    let mut options = match ttl {
        None => MutexOptions::new().ttl(DEFAULT_SESSION_TTL),
        Some(ttl) => MutexOptions::new().ttl(ttl).hold(Hold::MaxTtl),
    };
    if let Some(timeout) = timeout {
        options = options.timeout(timeout);
    }
    options
}

// ---------------------------------------------------------------------------
// blocking: the async types run through `Ready`, plus what only a blocking
// handle can do in `Drop` (revoke, release, resign and wait for it)

/// The last blocking handle of a session: dropping it revokes the lease.
struct SessionHandle<T: Transport> {
    session: AsyncSession<Ready<T>>,
}

impl<T: Transport> Drop for SessionHandle<T> {
    fn drop(&mut self) {
        self.session.inner.shared.stop();
        if !self.session.is_lost() {
            // A session closed already is not revoked twice.
            let _ = block_on(self.session.revoke());
        }
    }
}

/// A lease kept alive by a background thread, for a blocking client; see
/// the [module docs](self): an [`AsyncSession`] run through [`Ready`].
/// Dropping the last handle revokes the lease.
pub struct Session<T: Transport> {
    handle: Arc<SessionHandle<T>>,
}

impl<T: Transport> Clone for Session<T> {
    fn clone(&self) -> Self {
        Session {
            handle: self.handle.clone(),
        }
    }
}

impl<T: Transport> std::fmt::Debug for Session<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("lease", &format_args!("{:x}", self.lease_id()))
            .field("ttl", &self.ttl())
            .field("lost", &self.lost_reason())
            .finish_non_exhaustive()
    }
}

impl<T: Transport + Clone + Send + 'static> Session<T> {
    /// Grants a lease of `ttl` seconds and keeps it alive in the background.
    pub fn new(client: &T, ttl: i64) -> Result<Self, Error> {
        block_on(AsyncSession::new(&Ready(client.clone()), ttl)).map(Self::wrap)
    }

    /// Keeps the existing lease `lease` alive (after checking that it is:
    /// a lease that is gone fails with etcd's `LeaseNotFound`).
    pub fn from_lease(client: &T, lease: i64) -> Result<Self, Error> {
        block_on(AsyncSession::from_lease(&Ready(client.clone()), lease)).map(Self::wrap)
    }

    /// Acquires the lock `name` with this session (see [`MutexOptions`]):
    /// blocks until it is ours, the deadline passes ([`MutexError::Timeout`])
    /// or, for a try-lock, fails at once with [`MutexError::Busy`]. A wait
    /// is cut short when the session's lease is lost
    /// ([`MutexError::SessionExpired`]), within one read of the watch (the
    /// idle timeout at most).
    pub fn lock(
        &self,
        name: impl Into<Vec<u8>>,
        options: MutexOptions,
    ) -> Result<MutexGuard<T>, Error> {
        let guard = block_on(self.handle.session.lock(name, options))?;
        Ok(MutexGuard::wrap(guard, self.clone()))
    }

    /// One look at the lock `name`: `Ok(None)` if someone else holds it
    /// (our key is removed again).
    pub fn try_lock(
        &self,
        name: impl Into<Vec<u8>>,
        options: MutexOptions,
    ) -> Result<Option<MutexGuard<T>>, Error> {
        let guard = block_on(self.handle.session.try_lock(name, options))?;
        Ok(guard.map(|guard| MutexGuard::wrap(guard, self.clone())))
    }

    /// Campaigns in the election `name` with `value` and waits to lead (see
    /// [`Election::campaign`]).
    pub fn campaign(
        &self,
        name: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        options: MutexOptions,
    ) -> Result<LeaderGuard<T>, Error> {
        let guard = block_on(self.handle.session.campaign(name, value, options))?;
        Ok(LeaderGuard::wrap(guard, self.clone()))
    }

    /// Stops the keep-alive and revokes the lease, deleting its keys (every
    /// lock and election key of this session). A lease already gone is
    /// no error.
    pub fn close(self) -> Result<(), Error> {
        block_on(self.handle.session.clone().close())
    }
}

impl<T: Transport> Session<T> {
    fn wrap(session: AsyncSession<Ready<T>>) -> Self {
        Session {
            handle: Arc::new(SessionHandle { session }),
        }
    }

    /// The lease ID.
    pub fn lease_id(&self) -> i64 {
        self.handle.session.lease_id()
    }

    /// The lease's TTL in seconds, as granted.
    pub fn ttl(&self) -> i64 {
        self.handle.session.ttl()
    }

    /// The client the session runs on.
    pub fn client(&self) -> &T {
        &self.handle.session.client().0
    }

    /// True once the keep-alive found the lease gone (expired or revoked):
    /// every key attached to it is gone too.
    pub fn is_lost(&self) -> bool {
        self.handle.session.is_lost()
    }

    /// Why the lease was lost, if it was.
    pub fn lost_reason(&self) -> Option<String> {
        self.handle.session.lost_reason()
    }

    /// Runs `callback` (with the reason) once the lease is lost — on the
    /// keep-alive's thread, or at once if it is lost already. Never run if
    /// the session is closed or stopped first.
    pub fn on_lost(&self, callback: impl FnOnce(&str) + Send + 'static) {
        self.handle.session.on_lost(callback);
    }

    /// Blocks until the lease is lost (true) or `timeout` passes (false).
    pub fn wait_lost(&self, timeout: Option<Duration>) -> bool {
        self.handle.session.inner.shared.wait_lost(timeout)
    }

    /// Stops keeping the lease alive (Go's `Orphan`): it runs out one TTL
    /// after its last renewal. Dropping the session still revokes it.
    pub fn stop_keepalive(&self) {
        self.handle.session.stop_keepalive();
    }
}

/// A v3 lock held through a blocking client's [`Session`]; see the
/// [module docs](self): an [`AsyncMutexGuard`] run through [`Ready`].
/// **Dropping the guard releases the lock** (a delete guarded by our key's
/// create revision); [`release`](Self::release) does the same and reports
/// the outcome.
pub struct MutexGuard<T: Transport> {
    /// `None` once released.
    guard: Option<AsyncMutexGuard<Ready<T>>>,
    /// Its session's blocking handle: the lease outlives the guard.
    session: Session<T>,
}

impl<T: Transport> std::fmt::Debug for MutexGuard<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MutexGuard")
            .field("held", &self.guard.as_ref().map(|g| g.held()))
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl<T: Transport + Clone + Send + 'static> MutexGuard<T> {
    fn wrap(guard: AsyncMutexGuard<Ready<T>>, session: Session<T>) -> Self {
        MutexGuard {
            guard: Some(guard),
            session,
        }
    }

    /// Acquires the lock `name` on a session of its own, granted with
    /// `options`' TTL, closed when the guard is released or dropped.
    pub fn acquire_with_own_session(
        client: &T,
        name: impl Into<Vec<u8>>,
        options: MutexOptions,
    ) -> Result<Self, Error> {
        let guard = block_on(AsyncMutexGuard::acquire_with_own_session(
            &Ready(client.clone()),
            name,
            options,
        ))?;
        let session = Session::wrap(guard.session().clone());
        Ok(Self::wrap(guard, session))
    }

    /// etcetra's `with_lock(name, timeout, ttl)`: acquires the lock `name`
    /// on a session of its own, waiting at most `timeout` (`None`: as long
    /// as it takes). `ttl: None` keeps the lock until released (a 60 s
    /// session kept alive); `Some(ttl)` makes `ttl` seconds a hard maximum
    /// ([`Hold::MaxTtl`]): the lock frees itself about `ttl` after it was
    /// acquired, even while the holder still runs.
    pub fn with_lock(
        client: &T,
        name: impl Into<Vec<u8>>,
        timeout: Option<Duration>,
        ttl: Option<i64>,
    ) -> Result<Self, Error> {
        Self::acquire_with_own_session(client, name, with_lock_options(timeout, ttl))
    }
}

impl<T: Transport> MutexGuard<T> {
    fn guard(&self) -> &AsyncMutexGuard<Ready<T>> {
        // Taken only by `release` and `drop`, which consume the guard.
        self.guard.as_ref().expect("a live guard holds its lock")
    }

    /// The lock: prefix, key, fencing token, lease, header.
    pub fn held(&self) -> &HeldMutex {
        self.guard().held()
    }

    /// Our key, `<name>/<lease hex>`.
    pub fn key(&self) -> &[u8] {
        self.guard().key()
    }

    /// The fencing token: our key's create revision.
    pub fn fencing_token(&self) -> i64 {
        self.guard().fencing_token()
    }

    /// The session holding the lock.
    pub fn session(&self) -> &Session<T> {
        &self.session
    }

    /// True if the session's lease was lost: the lock is no longer ours.
    pub fn is_lost(&self) -> bool {
        self.session.is_lost()
    }

    /// Asks etcd whether we still hold the lock.
    pub fn is_held(&self) -> Result<bool, Error> {
        block_on(self.guard().is_held())
    }

    /// Releases the lock: deletes our key if it is still this acquisition's
    /// (`Ok(false)`: it was already gone), then closes the session if the
    /// guard made it.
    pub fn release(mut self) -> Result<bool, Error> {
        match self.guard.take() {
            Some(guard) => block_on(guard.release()),
            None => Ok(false),
        }
    }
}

impl<T: Transport> Drop for MutexGuard<T> {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            let _ = block_on(guard.release());
        }
    }
}

/// Leadership held through a blocking client's [`Session`]: an
/// [`AsyncLeaderGuard`] run through [`Ready`]. **Dropping the guard
/// resigns**; [`resign`](Self::resign) does the same and reports the
/// outcome.
pub struct LeaderGuard<T: Transport> {
    /// `None` once resigned.
    guard: Option<AsyncLeaderGuard<Ready<T>>>,
    session: Session<T>,
}

impl<T: Transport> std::fmt::Debug for LeaderGuard<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderGuard")
            .field("leadership", &self.guard.as_ref().map(|g| g.leadership()))
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl<T: Transport + Clone + Send + 'static> LeaderGuard<T> {
    fn wrap(guard: AsyncLeaderGuard<Ready<T>>, session: Session<T>) -> Self {
        LeaderGuard {
            guard: Some(guard),
            session,
        }
    }

    /// Campaigns in the election `name` with `value` on a session of its
    /// own (granted with `options`' TTL), closed when the guard resigns or drops.
    pub fn campaign_with_own_session(
        client: &T,
        name: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        options: MutexOptions,
    ) -> Result<Self, Error> {
        let guard = block_on(AsyncLeaderGuard::campaign_with_own_session(
            &Ready(client.clone()),
            name,
            value,
            options,
        ))?;
        let session = Session::wrap(guard.session().clone());
        Ok(Self::wrap(guard, session))
    }

    /// Sets a new value, only while we still lead ([`MutexError::NotHeld`]
    /// otherwise).
    pub fn proclaim(&mut self, value: impl Into<Vec<u8>>) -> Result<ResponseHeader, Error> {
        match self.guard.as_mut() {
            Some(guard) => block_on(guard.proclaim(value)),
            None => Err(crate::error::UsageError::FlowOutOfOrder {
                expected: "a leader guard that has not resigned",
            }
            .into()),
        }
    }
}

impl<T: Transport> LeaderGuard<T> {
    fn guard(&self) -> &AsyncLeaderGuard<Ready<T>> {
        // Taken only by `resign` and `drop`, which consume the guard.
        self.guard
            .as_ref()
            .expect("a live guard holds its leadership")
    }

    /// Our leadership: key, value, create revision, lease.
    pub fn leadership(&self) -> &Leadership {
        self.guard().leadership()
    }

    /// The value we proclaimed last.
    pub fn value(&self) -> &[u8] {
        self.guard().value()
    }

    /// The session holding the leadership.
    pub fn session(&self) -> &Session<T> {
        &self.session
    }

    /// True if the session's lease was lost: we no longer lead.
    pub fn is_lost(&self) -> bool {
        self.session.is_lost()
    }

    /// Asks etcd whether we still lead.
    pub fn is_leader(&self) -> Result<bool, Error> {
        block_on(self.guard().is_leader())
    }

    /// Resigns: deletes our key if it is still this campaign's (`Ok(false)`:
    /// it was already gone), then closes the session if the guard made it.
    pub fn resign(mut self) -> Result<bool, Error> {
        match self.guard.take() {
            Some(guard) => block_on(guard.resign()),
            None => Ok(false),
        }
    }
}

impl<T: Transport> Drop for LeaderGuard<T> {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            let _ = block_on(guard.resign());
        }
    }
}

// ---------------------------------------------------------------------------
// async

struct AsyncSessionInner<T> {
    client: T,
    lease: i64,
    ttl: i64,
    shared: Arc<Shared>,
    closed: AtomicBool,
}

impl<T> Drop for AsyncSessionInner<T> {
    fn drop(&mut self) {
        // Nothing can be awaited here: the lease runs out one TTL later.
        self.shared.stop();
    }
}

/// A lease kept alive by a background task, for an async client; see the
/// [module docs](self). **Close it with [`close`](Self::close)`.await`**:
/// dropping the last handle only stops the keep-alive (the lease then runs
/// out one TTL later).
pub struct AsyncSession<T> {
    inner: Arc<AsyncSessionInner<T>>,
}

impl<T> Clone for AsyncSession<T> {
    fn clone(&self) -> Self {
        AsyncSession {
            inner: self.inner.clone(),
        }
    }
}

impl<T> std::fmt::Debug for AsyncSession<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSession")
            .field("lease", &format_args!("{:x}", self.inner.lease))
            .field("ttl", &self.inner.ttl)
            .field("lost", &self.inner.shared.reason())
            .finish_non_exhaustive()
    }
}

impl<T: AsyncTransport + Clone + Send + 'static> AsyncSession<T> {
    /// Grants a lease of `ttl` seconds and keeps it alive in the background.
    pub async fn new(client: &T, ttl: i64) -> Result<Self, Error> {
        let granted = drive(client, crate::Call::new(LeaseGrant::new(ttl))).await?;
        Ok(Self::start(client, granted.id, granted.ttl))
    }

    /// Keeps the existing lease `lease` alive (after checking that it is).
    pub async fn from_lease(client: &T, lease: i64) -> Result<Self, Error> {
        let renewed = drive(client, crate::Call::new(LeaseKeepAliveOnce(lease))).await?;
        Ok(Self::start(client, lease, renewed.ttl))
    }

    fn start(client: &T, lease: i64, ttl: i64) -> Self {
        let shared = Arc::new(Shared::default());
        let keeper = keeper(lease, ttl);
        let (background, watcher) = (client.clone(), shared.clone());
        client.spawn(async move { keep(&background, keeper, &watcher).await });
        AsyncSession {
            inner: Arc::new(AsyncSessionInner {
                client: client.clone(),
                lease,
                ttl,
                shared,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Acquires the lock `name` with this session; see [`Session::lock`].
    pub async fn lock(
        &self,
        name: impl Into<Vec<u8>>,
        options: MutexOptions,
    ) -> Result<AsyncMutexGuard<T>, Error> {
        AsyncMutexGuard::acquire(self, name.into(), options, false).await
    }

    /// One look at the lock `name`: `Ok(None)` if someone else holds it.
    pub async fn try_lock(
        &self,
        name: impl Into<Vec<u8>>,
        options: MutexOptions,
    ) -> Result<Option<AsyncMutexGuard<T>>, Error> {
        match self.lock(name, options.try_lock()).await {
            Ok(guard) => Ok(Some(guard)),
            Err(e) if is_busy(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Campaigns in the election `name` with `value` and waits to lead.
    pub async fn campaign(
        &self,
        name: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        options: MutexOptions,
    ) -> Result<AsyncLeaderGuard<T>, Error> {
        AsyncLeaderGuard::campaign(self, name.into(), value.into(), options, false).await
    }
}

impl<T: AsyncTransport> AsyncSession<T> {
    /// Stops the keep-alive and revokes the lease, deleting its keys. A
    /// lease already gone is no error.
    pub async fn close(self) -> Result<(), Error> {
        self.revoke().await
    }

    /// [`close`](Self::close) through any handle: once per session.
    async fn revoke(&self) -> Result<(), Error> {
        self.inner.shared.stop();
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let revoke = crate::Call::new(LeaseRevoke(self.inner.lease));
        revoked(drive(&self.inner.client, revoke).await)
    }
}

impl<T> AsyncSession<T> {
    /// The lease ID.
    pub fn lease_id(&self) -> i64 {
        self.inner.lease
    }

    /// The lease's TTL in seconds, as granted.
    pub fn ttl(&self) -> i64 {
        self.inner.ttl
    }

    /// The client the session runs on.
    pub fn client(&self) -> &T {
        &self.inner.client
    }

    /// True once the keep-alive found the lease gone.
    pub fn is_lost(&self) -> bool {
        self.inner.shared.is_lost()
    }

    /// Why the lease was lost, if it was.
    pub fn lost_reason(&self) -> Option<String> {
        self.inner.shared.reason()
    }

    /// A future ready (with the reason) once the lease is lost; it stays
    /// pending forever if the session is closed or stopped first.
    pub fn lost(&self) -> Lost {
        Lost {
            shared: self.inner.shared.clone(),
        }
    }

    /// Runs `callback` (with the reason) once the lease is lost, on the
    /// keep-alive's task, or at once if it is lost already.
    pub fn on_lost(&self, callback: impl FnOnce(&str) + Send + 'static) {
        self.inner.shared.on_lost(Box::new(callback));
    }

    /// Stops keeping the lease alive: it runs out one TTL after its last renewal.
    pub fn stop_keepalive(&self) {
        self.inner.shared.stop();
    }
}

/// A v3 lock held through an async client's [`AsyncSession`]. **Release it
/// with [`release`](Self::release)`.await`**: a guard dropped unreleased
/// leaves its key until the session's lease ends (for a guard with a session
/// of its own: one TTL later, the keep-alive being stopped by the drop).
pub struct AsyncMutexGuard<T> {
    session: AsyncSession<T>,
    held: HeldMutex,
    owns_session: bool,
}

impl<T> std::fmt::Debug for AsyncMutexGuard<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncMutexGuard")
            .field("held", &self.held)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl<T: AsyncTransport + Clone + Send + 'static> AsyncMutexGuard<T> {
    async fn acquire(
        session: &AsyncSession<T>,
        name: Vec<u8>,
        options: MutexOptions,
        owns_session: bool,
    ) -> Result<Self, Error> {
        let flow = AcquireMutex::new(name, session.lease_id(), options);
        let key = flow.key().to_vec();
        let held = unless_lost(session, key, run_stream(session.client(), flow)).await?;
        if held.hold == Hold::MaxTtl {
            session.stop_keepalive();
        }
        Ok(AsyncMutexGuard {
            session: session.clone(),
            held,
            owns_session,
        })
    }

    /// Acquires the lock `name` on a session of its own, granted with
    /// `options`' TTL, closed by [`release`](Self::release).
    pub async fn acquire_with_own_session(
        client: &T,
        name: impl Into<Vec<u8>>,
        options: MutexOptions,
    ) -> Result<Self, Error> {
        let session = AsyncSession::new(client, options.ttl_seconds()).await?;
        match Self::acquire(&session, name.into(), options, true).await {
            Ok(guard) => Ok(guard),
            Err(e) => {
                let _ = session.close().await;
                Err(e)
            }
        }
    }

    /// etcetra's `with_lock(name, timeout, ttl)`; see [`MutexGuard::with_lock`].
    pub async fn with_lock(
        client: &T,
        name: impl Into<Vec<u8>>,
        timeout: Option<Duration>,
        ttl: Option<i64>,
    ) -> Result<Self, Error> {
        Self::acquire_with_own_session(client, name, with_lock_options(timeout, ttl)).await
    }
}

impl<T: AsyncTransport> AsyncMutexGuard<T> {
    /// Asks etcd whether we still hold the lock.
    pub async fn is_held(&self) -> Result<bool, Error> {
        drive(self.session.client(), self.held.check()).await
    }

    /// Releases the lock: deletes our key if it is still this acquisition's
    /// (`Ok(false)`: it was already gone), then closes the session if the
    /// guard made it.
    pub async fn release(self) -> Result<bool, Error> {
        let released = drive(self.session.client(), self.held.release()).await;
        if self.owns_session {
            let closed = self.session.clone().close().await;
            let released = released?;
            closed?;
            return Ok(released);
        }
        released
    }
}

impl<T> AsyncMutexGuard<T> {
    /// The lock: prefix, key, fencing token, lease, header.
    pub fn held(&self) -> &HeldMutex {
        &self.held
    }

    /// Our key, `<name>/<lease hex>`.
    pub fn key(&self) -> &[u8] {
        &self.held.key
    }

    /// The fencing token: our key's create revision.
    pub fn fencing_token(&self) -> i64 {
        self.held.create_revision
    }

    /// The session holding the lock.
    pub fn session(&self) -> &AsyncSession<T> {
        &self.session
    }

    /// True if the session's lease was lost: the lock is no longer ours.
    pub fn is_lost(&self) -> bool {
        self.session.is_lost()
    }
}

/// Leadership held through an async client's [`AsyncSession`]. **Resign
/// with [`resign`](Self::resign)`.await`**; a guard dropped without
/// resigning keeps its key until the session's lease ends.
pub struct AsyncLeaderGuard<T> {
    session: AsyncSession<T>,
    leadership: Leadership,
    owns_session: bool,
}

impl<T> std::fmt::Debug for AsyncLeaderGuard<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncLeaderGuard")
            .field("leadership", &self.leadership)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl<T: AsyncTransport + Clone + Send + 'static> AsyncLeaderGuard<T> {
    async fn campaign(
        session: &AsyncSession<T>,
        name: Vec<u8>,
        value: Vec<u8>,
        options: MutexOptions,
        owns_session: bool,
    ) -> Result<Self, Error> {
        let hold = options.hold_mode();
        let flow = Election::new(name).campaign(session.lease_id(), value, options);
        let key = flow.key().to_vec();
        let leadership = unless_lost(session, key, run_stream(session.client(), flow)).await?;
        if hold == Hold::MaxTtl {
            session.stop_keepalive();
        }
        Ok(AsyncLeaderGuard {
            session: session.clone(),
            leadership,
            owns_session,
        })
    }

    /// Campaigns in the election `name` with `value` on a session of its
    /// own (granted with `options`' TTL), closed by [`resign`](Self::resign).
    pub async fn campaign_with_own_session(
        client: &T,
        name: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        options: MutexOptions,
    ) -> Result<Self, Error> {
        let session = AsyncSession::new(client, options.ttl_seconds()).await?;
        match Self::campaign(&session, name.into(), value.into(), options, true).await {
            Ok(guard) => Ok(guard),
            Err(e) => {
                let _ = session.close().await;
                Err(e)
            }
        }
    }
}

impl<T: AsyncTransport> AsyncLeaderGuard<T> {
    /// Asks etcd whether we still lead.
    pub async fn is_leader(&self) -> Result<bool, Error> {
        drive(self.session.client(), self.leadership.check()).await
    }

    /// Sets a new value, only while we still lead ([`MutexError::NotHeld`]
    /// otherwise).
    pub async fn proclaim(&mut self, value: impl Into<Vec<u8>>) -> Result<ResponseHeader, Error> {
        let value = value.into();
        let header = drive(
            self.session.client(),
            self.leadership.proclaim(value.clone()),
        )
        .await?;
        self.leadership.value = value;
        Ok(header)
    }

    /// Resigns: deletes our key if it is still this campaign's, then closes
    /// the session if the guard made it.
    pub async fn resign(self) -> Result<bool, Error> {
        let resigned = drive(self.session.client(), self.leadership.resign()).await;
        if self.owns_session {
            let closed = self.session.clone().close().await;
            let resigned = resigned?;
            closed?;
            return Ok(resigned);
        }
        resigned
    }
}

impl<T> AsyncLeaderGuard<T> {
    /// Our leadership: key, value, create revision, lease.
    pub fn leadership(&self) -> &Leadership {
        &self.leadership
    }

    /// The value we proclaimed last.
    pub fn value(&self) -> &[u8] {
        &self.leadership.value
    }

    /// The session holding the leadership.
    pub fn session(&self) -> &AsyncSession<T> {
        &self.session
    }

    /// True if the session's lease was lost: we no longer lead.
    pub fn is_lost(&self) -> bool {
        self.session.is_lost()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoke_of_a_lease_already_gone_is_no_failure() {
        assert!(lease_not_found(&Error::from(crate::v3::V3Error::new(
            200,
            5,
            "etcdserver: requested lease not found"
        ))));
    }
}
