//! The virtual-time driver of one flow against a simulated etcd.
//!
//! [`Sim`] owns a [`Cluster`], a virtual clock, a [`Server`] (a model of
//! etcd, or `()` when a test scripts every answer) and a *hook* that decides
//! each request's fate ([`Reply`]): served by the model, answered late,
//! replaced, lost, left to time out. Time moves only on a `Sleep`, on a late
//! answer, on a parked long poll (to its event or its timeout) and on a
//! timed-out request; the model's own clock (TTL expiries) and the
//! timeline of third-party actions move with it. The driver keeps the flow
//! contracts exactly as a transport must: one exchange in flight, a
//! streamed body read only while the flow asks for it and closed before
//! any other step is acted on.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::sent::Sent;
use crate::cluster::Cluster;
use crate::error::{Error, TransportErrorKind};
use crate::flow::{Flow, Input, Step, StreamFlow, StreamStep};

/// A simulated etcd the driver consults.
pub trait Server {
    /// The answer to `sent`, acting on it; `None` for a long poll that has
    /// to wait for an event.
    fn serve(&mut self, sent: &Sent) -> Option<http::Response<Bytes>>;

    /// A parked long poll's answer, once an event came for it.
    fn wake(&mut self, _parked: &Sent) -> Option<http::Response<Bytes>> {
        None
    }

    /// The next time the model changes by itself (a TTL running out).
    fn next_change(&self) -> Option<Duration> {
        None
    }

    /// Moves the model's clock to `t` (since the simulation began).
    fn advance_to(&mut self, _t: Duration) {}

    /// The next piece of the streamed body answering `stream`.
    fn read(&mut self, _stream: &Sent) -> Chunk {
        Chunk::End(Duration::ZERO)
    }
}

/// No model: every answer comes from the hook.
impl Server for () {
    fn serve(&mut self, sent: &Sent) -> Option<http::Response<Bytes>> {
        panic!("no model behind this simulation: script a reply for {sent:?}")
    }
}

/// What happens to one request, as the hook decides.
pub enum Reply {
    /// The model answers at once (a long poll: when its event comes, or
    /// `Timeout` at the request's own timeout).
    Serve,
    /// The model acts when the request arrives; its answer comes this late.
    Slow(Duration),
    /// This answer, this long after sending; the model never sees the request.
    Answer(Duration, http::Response<Bytes>),
    /// No complete answer: a transport failure this long after sending. (A
    /// hook that wants the request applied first calls the model itself.)
    Fail(Duration, TransportErrorKind),
    /// Nothing comes back: time runs to the request's timeout, then `Timeout`.
    TimeOut,
    /// The model acts on the request first (it was applied), then this
    /// happens to its answer.
    Applied(Box<Reply>),
    /// Stop driving: the test has seen what it wanted.
    Stop,
}

impl Reply {
    /// No answer at once; `applied`: the model acted on the request anyway.
    pub fn lost(applied: bool, kind: TransportErrorKind) -> Reply {
        Reply::applied_if(applied, Reply::Fail(Duration::ZERO, kind))
    }

    /// No answer before the request's timeout; `applied`: the model acted
    /// on the request anyway.
    pub fn hang(applied: bool) -> Reply {
        Reply::applied_if(applied, Reply::TimeOut)
    }

    fn applied_if(applied: bool, reply: Reply) -> Reply {
        if applied {
            Reply::Applied(Box::new(reply))
        } else {
            reply
        }
    }
}

/// One piece of a streamed body.
pub enum Chunk {
    /// Bytes, this long after the read began.
    Data(Duration, Bytes),
    /// The body's clean end, with no trailers.
    End(Duration),
    /// The body breaks.
    Fail(Duration, TransportErrorKind),
    /// Nothing: the read runs to its deadline.
    Silence,
}

/// A third-party action on the model.
type Action<'h, S> = Box<dyn FnOnce(&mut S) + 'h>;
/// A hook deciding each request's fate.
pub type HookFn<'a, S> = dyn FnMut(&Sent, &mut S) -> Reply + 'a;
type Hook<'h, S> = Box<HookFn<'h, S>>;

/// One flow, one [`Cluster`], one model, one virtual clock.
pub struct Sim<'h, S: Server = ()> {
    pub cluster: Cluster,
    pub start: Instant,
    pub now: Instant,
    pub model: S,
    /// Every request, in order.
    pub sent: Vec<Sent>,
    /// Every message a stream flow sent on an open stream (gRPC), in order.
    pub stream_messages: Vec<Bytes>,
    /// Every `Sleep`: (when, until), since the start.
    pub sleeps: Vec<(Duration, Duration)>,
    timeline: Vec<(Duration, Action<'h, S>)>,
    hook: Hook<'h, S>,
    /// When the caller stops the flow ([`Input::Stop`]), and whether it was told.
    stop: Option<(Duration, bool)>,
    /// Most requests before a drive gives up quietly (`None`: it panics
    /// after 10,000, a flow that never ends).
    limit: Option<usize>,
}

impl<'h> Sim<'h, ()> {
    /// A cluster of `urls` without member discovery, and no model.
    pub fn scripted(urls: &[&str]) -> Self {
        Sim::with_model(urls, ())
    }
}

impl<'h, S: Server> Sim<'h, S> {
    /// A cluster of `urls` without member discovery (a test that wants it
    /// turns it on), in front of `model`; the hook serves every request.
    pub fn with_model(urls: &[&str], model: S) -> Self {
        let mut cluster = Cluster::from_urls(urls).expect("valid endpoints");
        cluster.set_discover_members(false);
        let start = Instant::now();
        Sim {
            cluster,
            start,
            now: start,
            model,
            sent: Vec::new(),
            stream_messages: Vec::new(),
            sleeps: Vec::new(),
            timeline: Vec::new(),
            hook: Box::new(|_, _| Reply::Serve),
            stop: None,
            limit: None,
        }
    }

    /// The virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The requests sent since `from`.
    pub fn since(&self, from: usize) -> &[Sent] {
        &self.sent[from..]
    }

    /// Runs `action` on the model at virtual time `t`.
    pub fn at(&mut self, t: Duration, action: impl FnOnce(&mut S) + 'h) {
        let i = self.timeline.partition_point(|(x, _)| *x <= t);
        self.timeline.insert(i, (t, Box::new(action)));
    }

    /// Stops the flow at `t`, as a guard's handle does: a sleep through `t`
    /// is cut short there (the driver is woken), and the flow is told.
    pub fn stop_at(&mut self, t: Duration) {
        self.stop = Some((t, false));
    }

    /// Decides each request's fate from now on.
    pub fn hook(&mut self, hook: impl FnMut(&Sent, &mut S) -> Reply + 'h) {
        self.hook = Box::new(hook);
    }

    /// Gives up quietly (the drive returns `None`) after `requests` requests.
    pub fn limit(&mut self, requests: usize) {
        self.limit = Some(requests);
    }

    /// The next time something happens to the model, if by `limit`.
    fn next_change(&self, limit: Duration) -> Option<Duration> {
        let scheduled = self.timeline.first().map(|(t, _)| *t);
        [scheduled, self.model.next_change()]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.max(self.elapsed()))
            .filter(|t| *t <= limit)
    }

    fn apply_at(&mut self, t: Duration) {
        let t = t.max(self.elapsed());
        self.model.advance_to(t);
        while self.timeline.first().is_some_and(|(x, _)| *x <= t) {
            let (_, action) = self.timeline.remove(0);
            action(&mut self.model);
        }
        self.now = self.start + t;
    }

    /// Moves the clock to `to`, the model and the timeline with it.
    pub fn advance(&mut self, to: Instant) {
        let limit = to.saturating_duration_since(self.start);
        while let Some(t) = self.next_change(limit) {
            self.apply_at(t);
        }
        self.apply_at(limit);
    }

    /// Moves the clock by `by`.
    pub fn advance_by(&mut self, by: Duration) {
        self.advance(self.now + by);
    }

    /// A parked long poll: its answer when an event comes, or `None` at its timeout.
    fn park(&mut self, sent: &Sent) -> Option<http::Response<Bytes>> {
        let ends = sent.ends();
        loop {
            match self.next_change(ends.unwrap_or(Duration::MAX)) {
                Some(t) => {
                    self.apply_at(t);
                    if let Some(answer) = self.model.wake(sent) {
                        return Some(answer);
                    }
                }
                None => {
                    let ends = ends.unwrap_or_else(|| panic!("{sent:?} would wait forever"));
                    self.apply_at(ends);
                    return None;
                }
            }
        }
    }

    /// Tells the flow to stop once its time has come.
    fn stop_if_due(&mut self, handle: &mut dyn FnMut(&mut Cluster, Instant, Input)) {
        if let Some((at, told @ false)) = &mut self.stop {
            if *at <= self.now - self.start {
                *told = true;
                handle(&mut self.cluster, self.now, Input::Stop);
            }
        }
    }

    /// The end of a sleep, or earlier if the caller stops the flow first.
    fn sleep(&mut self, until: Instant) {
        assert!(until > self.now, "a sleep moves time forward");
        self.sleeps.push((self.elapsed(), until - self.start));
        assert!(self.sleeps.len() < 100_000, "the flow sleeps forever");
        let woken = match self.stop {
            Some((at, false)) => until.min(self.start + at),
            _ => until,
        };
        self.advance(woken);
    }

    /// Records a request (`stream`: opened as a stream); `false` once the
    /// request limit is reached.
    fn record(
        &mut self,
        request: &http::Request<Bytes>,
        timeout: Option<Duration>,
        stream: bool,
    ) -> bool {
        if self.limit.is_some_and(|n| self.sent.len() >= n) {
            return false;
        }
        assert!(self.sent.len() < 10_000, "the flow never ends");
        let mut sent = Sent::new(request, timeout, self.elapsed());
        sent.stream = stream;
        self.sent.push(sent);
        true
    }

    /// One exchange: what the hook and the model make of the last request.
    /// `None` if the hook said [`Reply::Stop`].
    fn exchange(&mut self, hook: &mut HookFn<'_, S>) -> Option<Input> {
        // Out of the log while the exchange runs (nothing reads the log then).
        let sent = self.sent.pop().expect("recorded");
        let reply = hook(&sent, &mut self.model);
        let input = self.outcome(&sent, reply);
        self.sent.push(sent);
        input
    }

    /// Runs `body` with the stored hook lent out.
    fn with_hook<T>(&mut self, body: impl FnOnce(&mut Self, &mut HookFn<'_, S>) -> T) -> T {
        let mut hook = std::mem::replace(&mut self.hook, Box::new(|_, _| Reply::Serve));
        let out = body(self, &mut *hook);
        self.hook = hook;
        out
    }

    fn outcome(&mut self, sent: &Sent, reply: Reply) -> Option<Input> {
        let timed_out = || Input::failure(TransportErrorKind::Timeout, "timed out");
        Some(match reply {
            Reply::Serve => match self.model.serve(sent) {
                Some(answer) => Input::Response(answer),
                None => match self.park(sent) {
                    Some(answer) => Input::Response(answer),
                    None => timed_out(),
                },
            },
            Reply::Slow(after) => {
                let answer = self.model.serve(sent).expect("not a parked poll");
                self.advance_by(after);
                Input::Response(answer)
            }
            Reply::Answer(after, answer) => {
                self.advance_by(after);
                Input::Response(answer)
            }
            Reply::Fail(after, kind) => {
                self.advance_by(after);
                Input::failure(kind, "scripted")
            }
            Reply::TimeOut => {
                let timeout = sent.timeout.expect("a request that can hang has a timeout");
                self.advance(self.start + sent.at + timeout);
                timed_out()
            }
            Reply::Applied(then) => {
                let _ = self.model.serve(sent);
                return self.outcome(sent, *then);
            }
            Reply::Stop => return None,
        })
    }

    /// Drives `flow` to its end. `None` if the hook said [`Reply::Stop`]
    /// or the request limit was reached.
    pub fn drive<F: Flow>(&mut self, flow: &mut F) -> Option<Result<F::Output, Error>> {
        self.with_hook(|sim, hook| sim.drive_with(flow, hook))
    }

    /// [`drive`](Self::drive) with `hook` instead of the stored one (a
    /// hook that borrows the test's locals).
    pub fn drive_with<F: Flow>(
        &mut self,
        flow: &mut F,
        hook: &mut HookFn<'_, S>,
    ) -> Option<Result<F::Output, Error>> {
        let mut sleeps_in_a_row = 0;
        loop {
            self.stop_if_due(&mut |c, now, input| flow.handle(c, now, input));
            match flow.poll(&mut self.cluster, self.now) {
                Step::Transmit(t) => {
                    sleeps_in_a_row = 0;
                    if !self.record(&t.request, t.timeout, false) {
                        return None;
                    }
                    let input = self.exchange(hook)?;
                    flow.handle(&mut self.cluster, self.now, input);
                }
                Step::Sleep(until) => {
                    sleeps_in_a_row += 1;
                    assert!(
                        sleeps_in_a_row < 1_000,
                        "the flow keeps sleeping without sending anything"
                    );
                    self.sleep(until);
                }
                Step::Done(result) => return Some(result),
            }
        }
    }

    /// Drives `flow` to its end; the hook never says [`Reply::Stop`].
    pub fn run<F: Flow>(&mut self, flow: &mut F) -> Result<F::Output, Error> {
        self.drive(flow).expect("the hook stopped the drive")
    }

    /// Drives `flow` with exactly `replies`, in order.
    pub fn script<F: Flow>(
        &mut self,
        mut flow: F,
        replies: Vec<Reply>,
    ) -> Result<F::Output, Error> {
        let mut replies = std::collections::VecDeque::from(replies);
        let result = self.drive_with(&mut flow, &mut |sent, _| {
            replies
                .pop_front()
                .unwrap_or_else(|| panic!("script exhausted; the flow asked for {sent:?}"))
        });
        assert!(replies.is_empty(), "{} replies left unused", replies.len());
        result.expect("the script has no Stop")
    }

    /// The first request `flow` sends (and nothing more).
    pub fn first<F: Flow>(&mut self, mut flow: F) -> Sent {
        let before = self.sent.len();
        assert!(self
            .drive_with(&mut flow, &mut |_, _| Reply::Stop)
            .is_none());
        self.sent[before].clone()
    }

    /// Drives a stream flow to its end, handing each item to `emitted`.
    /// `None` if the hook said [`Reply::Stop`] or the request limit was
    /// reached. A streamed answer's head comes from the hook and the model
    /// like any answer; its body from [`Server::read`].
    pub fn drive_stream<F: StreamFlow>(
        &mut self,
        flow: &mut F,
        emitted: impl FnMut(F::Item),
    ) -> Option<Result<(), Error>> {
        self.with_hook(|sim, hook| sim.drive_stream_with(flow, hook, emitted))
    }

    /// [`drive_stream`](Self::drive_stream) with `hook` instead of the stored one.
    pub fn drive_stream_with<F: StreamFlow>(
        &mut self,
        flow: &mut F,
        hook: &mut HookFn<'_, S>,
        mut emitted: impl FnMut(F::Item),
    ) -> Option<Result<(), Error>> {
        let mut open: Option<Sent> = None;
        let mut quiet_steps = 0;
        loop {
            self.stop_if_due(&mut |c, now, input| flow.handle(c, now, input));
            let step = flow.poll(&mut self.cluster, self.now);
            if !matches!(
                step,
                StreamStep::Read(_)
                    | StreamStep::Send(_)
                    | StreamStep::Emit(_)
                    | StreamStep::Warn(_)
            ) {
                // A transport closes the body before acting on any other step.
                open = None;
            }
            quiet_steps += 1;
            assert!(quiet_steps < 10_000, "the stream flow spins without I/O");
            match step {
                StreamStep::End(result) => return Some(result),
                StreamStep::Emit(item) => emitted(item),
                StreamStep::Warn(_) => {}
                StreamStep::Send(message) => {
                    assert!(open.is_some(), "Send with no open stream");
                    self.stream_messages.push(message);
                }
                StreamStep::Sleep(until) => self.sleep(until),
                StreamStep::Transmit(t) => {
                    quiet_steps = 0;
                    if !self.record(&t.request, t.timeout, false) {
                        return None;
                    }
                    let input = self.exchange(hook)?;
                    flow.handle(&mut self.cluster, self.now, input);
                }
                StreamStep::Open(t) => {
                    quiet_steps = 0;
                    if !self.record(&t.request, t.timeout, true) {
                        return None;
                    }
                    let input = match self.exchange(hook)? {
                        Input::Response(answer) => {
                            open = self.sent.last().cloned();
                            Input::Head(answer.into_parts().0)
                        }
                        other => other,
                    };
                    flow.handle(&mut self.cluster, self.now, input);
                }
                StreamStep::Read(deadline) => {
                    quiet_steps = 0;
                    let stream = open.clone().expect("Read with no open body");
                    let input = self.read(&stream, deadline);
                    if !matches!(input, Input::Data(_)) {
                        open = None;
                    }
                    flow.handle(&mut self.cluster, self.now, input);
                }
            }
        }
    }

    /// One read of an open body, cut at `deadline`.
    fn read(&mut self, stream: &Sent, deadline: Option<Instant>) -> Input {
        let late = |sim: &Self, after: Duration| deadline.filter(|d| sim.now + after >= *d);
        let (after, input) = match self.model.read(stream) {
            Chunk::Data(after, data) => (after, Input::Data(data)),
            Chunk::End(after) => (after, Input::End(http::HeaderMap::new())),
            Chunk::Fail(after, kind) => (after, Input::failure(kind, "scripted")),
            Chunk::Silence => (Duration::MAX, Input::Stop),
        };
        if let Some(deadline) = late(self, after) {
            self.advance(deadline);
            return Input::failure(TransportErrorKind::Timeout, "read timed out");
        }
        assert!(
            after != Duration::MAX,
            "a read with no deadline waits forever"
        );
        self.advance_by(after);
        input
    }
}
