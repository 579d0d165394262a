//! The worker threads: one event loop per worker (a current-thread tokio runtime, a *shard*),
//! host handlers run on the same thread, and a watchdog that hands a shard over when its
//! thread is stuck in a handler.
//!
//! Each shard owns the connections placed on it. A request that needs the host's handler
//! becomes a job on its shard's queue; the thread driving the shard leaves the runtime once the
//! tasks it has ready have run (its `block_on` returns), runs the queued jobs itself, and goes
//! back in. Answers those jobs give are handed to their connections when it goes back in,
//! inside the runtime, so nothing wakes across threads: a request handled this way costs no
//! context switch and no system call of its own — about what an inline handler costs, where
//! handing every request to another thread costs two context switches (measured:
//! bench/c/RESULTS.md, "Dispatch").
//!
//! A job that blocks (a handler that sleeps, takes a lock, waits on a database) would stall the
//! shard's other connections. The watchdog looks at the threads every [`STALL_TICK`] (backing
//! off to [`MAX_TICK`] while nothing blocks): a thread seen in the same job at two looks in a
//! row is replaced — the watchdog gives its shard to a spare thread, which takes the runtime
//! over (`block_on` on a current-thread runtime takes the core the stuck thread left behind
//! when its own `block_on` returned). The stuck thread finishes its job and becomes a spare.
//! So a blocking handler holds up the rest of its shard for one to two ticks (up to ~20 ms for
//! the first one after a calm spell), and up to `handler_threads` handlers may block at once —
//! the hand-off Go's runtime (sysmon) does for threads stuck in system calls.
//!
//! On WASI there are no threads: one shard, driven by whoever waits for the server, and every
//! handler inline.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify};

use crate::config::Config;
use crate::handler::{Reply, Request, Response};
use crate::sys;

/// A request for the host's handler, run by the thread driving the shard (outside its
/// runtime). Kept in the queue as is: no allocation per call.
pub(crate) struct Call {
    pub(crate) request: Request,
    pub(crate) reply: Reply,
}

/// What runs a [`Call`]: the server's handler, behind its panic guard.
pub(crate) type Target = Arc<dyn Fn(Request, Reply) + Send + Sync>;

/// How often the watchdog looks for threads stuck in a handler, at first and right after a
/// hand-over: a handler that blocks holds up the other connections of its shard for one to two
/// of these.
pub(crate) const STALL_TICK: Duration = Duration::from_millis(1);

/// The longest the watchdog waits between looks. After [`CALM_LOOKS`] looks without a hand-over
/// the interval doubles up to this (as Go's sysmon does), so a server whose handlers never block
/// pays about a hundred wake-ups a second instead of a thousand (1000 cost 2.5% of a pinned
/// server's CPU, measured); the first handler to block after a calm spell waits up to twice
/// this for its hand-over, and the ones after it one to two `STALL_TICK`s.
const MAX_TICK: Duration = Duration::from_millis(10);

/// Looks without a hand-over before the watchdog starts waiting longer between them.
const CALM_LOOKS: u32 = 50;

/// The watchdog sleeps until the next job after this long without seeing one.
const WATCHDOG_IDLE: Duration = Duration::from_millis(200);

/// A thread runs queued jobs for at most this long before it lets the shard's I/O run again.
const BATCH_BUDGET: Duration = Duration::from_millis(1);

/// A spare thread with nothing to do for this long exits.
const SPARE_KEEPALIVE: Duration = Duration::from_secs(10);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a shard's connection tasks share with the threads that drive it.
pub(crate) struct Queue {
    jobs: Mutex<VecDeque<Call>>,
    target: std::sync::OnceLock<Target>,
    /// Wakes the driving thread's `block_on` future: a job was queued, the stop began, or a
    /// handler slot came free.
    wake: Notify,
    /// Answers given by the jobs of the thread driving the shard, delivered when it goes back
    /// into the runtime. Also holds the shard's driver generation, so that deferring an answer
    /// and handing the shard over cannot cross.
    deferred: Mutex<Deferred>,
    /// The driver generation (a copy of `deferred.gen` readable without the lock).
    gen: AtomicU64,
    stop: AtomicBool,
    /// Connections placed on this shard and still open.
    conns: AtomicUsize,
}

struct Deferred {
    gen: u64,
    answers: Vec<(oneshot::Sender<Response>, Response)>,
}

impl Queue {
    fn new() -> Self {
        Queue {
            jobs: Mutex::new(VecDeque::new()),
            target: std::sync::OnceLock::new(),
            wake: Notify::new(),
            deferred: Mutex::new(Deferred {
                gen: 0,
                answers: Vec::new(),
            }),
            gen: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            conns: AtomicUsize::new(0),
        }
    }

    /// Queues a handler call; called by a connection task on this shard.
    pub(crate) fn submit(&self, call: Call) {
        lock(&self.jobs).push_back(call);
        self.wake.notify_one();
    }

    fn has_jobs(&self) -> bool {
        !lock(&self.jobs).is_empty()
    }

    /// Hands the answers deferred so far to their connections (inside the runtime, so their
    /// tasks are woken locally). `scratch` keeps its capacity from one batch to the next.
    fn deliver(&self, scratch: &mut Vec<(oneshot::Sender<Response>, Response)>) {
        {
            let mut d = lock(&self.deferred);
            if d.answers.is_empty() {
                return;
            }
            std::mem::swap(&mut d.answers, scratch);
        }
        for (tx, resp) in scratch.drain(..) {
            // The connection may be gone meanwhile: the answer is dropped, as it would be if
            // the client left just after it was sent.
            let _ = tx.send(resp);
        }
    }

    /// Tells the thread driving this shard to leave it: at the stop, before `wait` asks.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Every waiter: right after a hand-over two threads may wait on one shard (the
        // replaced one still holding the runtime, the new one waiting for it).
        self.wake.notify_waiters();
    }

    /// Replaces the driver: later answers of the old one are sent directly.
    fn next_generation(&self) -> u64 {
        let mut d = lock(&self.deferred);
        d.gen += 1;
        self.gen.store(d.gen, Ordering::SeqCst);
        d.gen
    }
}

thread_local! {
    /// The shard (and driver generation) whose jobs this thread is running right now.
    static RUNNING: std::cell::Cell<Option<(*const Queue, u64)>> = const { std::cell::Cell::new(None) };
}

/// Delivers an answer: deferred to the shard's next turn when given by a job its driving thread
/// runs (the common case: no cross-thread wake-up), sent at once otherwise. False when the
/// receiver is gone (the client left, or the stop was forced).
pub(crate) fn send_answer(tx: oneshot::Sender<Response>, resp: Response) -> bool {
    if tx.is_closed() {
        return false;
    }
    if let Some((q, gen)) = RUNNING.with(|r| r.get()) {
        // SAFETY: RUNNING is set only while the thread runs jobs of this queue, holding a
        // reference to it (see `Inner::drive`).
        let q = unsafe { &*q };
        let mut d = lock(&q.deferred);
        if d.gen == gen {
            d.answers.push((tx, resp));
            return true;
        }
    }
    tx.send(resp).is_ok()
}

/// How many threads may be inside host handlers at once (`handler_threads`).
struct Slots {
    free: AtomicUsize,
    /// A shard has jobs waiting for a slot.
    starved: AtomicBool,
}

impl Slots {
    fn try_acquire(&self) -> bool {
        self.free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    fn available(&self) -> bool {
        self.free.load(Ordering::Acquire) > 0
    }
}

/// One worker's event loop.
struct Shard {
    rt: Option<tokio::runtime::Runtime>,
    queue: Arc<Queue>,
}

/// What the threads share.
struct Inner {
    shards: Vec<Shard>,
    slots: Slots,
    /// Threads idle or waiting for a shard to drive.
    spares: Mutex<Spares>,
    spare_cv: Condvar,
    /// Every runner thread's state, read by the watchdog.
    runners: Mutex<Vec<Arc<Runner>>>,
    stopping: AtomicBool,
    /// Set while the watchdog sleeps until the next job.
    watchdog_parked: AtomicBool,
    watchdog: Mutex<Option<std::thread::Thread>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Run first on every thread the workers start (signal mask, thread marks).
    on_start: Arc<dyn Fn() + Send + Sync>,
}

#[derive(Default)]
struct Spares {
    /// Shards waiting for a thread: (shard, driver generation).
    pending: VecDeque<(usize, u64)>,
    idle: usize,
}

/// A thread that drives shards and runs their jobs.
#[derive(Default)]
struct Runner {
    /// (job sequence << 1) | 1 while inside a job.
    busy: AtomicU64,
    /// What the watchdog saw at its previous look.
    seen: AtomicU64,
    /// The shard it drives (usize::MAX: none) and with which generation.
    shard: AtomicUsize,
    gen: AtomicU64,
}

const NO_SHARD: usize = usize::MAX;

enum Exit {
    Stopped,
    Replaced,
}

/// Why the driving `block_on` returned.
enum Turn {
    Jobs,
    Stop,
}

impl Inner {
    /// Drives shard `i` as generation `gen` until the stop, or until replaced.
    fn drive(&self, me: &Runner, i: usize, gen: u64) -> Exit {
        let shard = &self.shards[i];
        let q = &*shard.queue;
        let rt = shard
            .rt
            .as_ref()
            .expect("runtime present while threads run");
        let mut scratch = Vec::new();
        let mut seq = me.busy.load(Ordering::Relaxed) >> 1;
        loop {
            if q.gen.load(Ordering::SeqCst) != gen {
                return Exit::Replaced;
            }
            let turn = rt.block_on(self.turn(q, &mut scratch));
            if let Turn::Stop = turn {
                return Exit::Stopped;
            }
            let Some(target) = q.target.get() else {
                // No handler: nothing is ever queued.
                continue;
            };
            let started = Instant::now();
            RUNNING.with(|r| r.set(Some((q as *const Queue, gen))));
            let mut replaced = false;
            let mut ran = 0u32;
            while let Some(call) = self.next_job(q) {
                seq += 1;
                me.busy.store((seq << 1) | 1, Ordering::SeqCst);
                if self.watchdog_parked.load(Ordering::SeqCst) {
                    if let Some(t) = lock(&self.watchdog).as_ref() {
                        t.unpark();
                    }
                }
                target(call.request, call.reply);
                me.busy.store(seq << 1, Ordering::SeqCst);
                self.release_slot();
                if q.gen.load(Ordering::SeqCst) != gen {
                    replaced = true;
                    break;
                }
                ran += 1;
                if ran % 8 == 0 && started.elapsed() >= BATCH_BUDGET {
                    break;
                }
            }
            RUNNING.with(|r| r.set(None));
            if replaced {
                return Exit::Replaced;
            }
        }
    }

    /// The future a driving thread blocks on: delivers deferred answers and lets the runtime
    /// run until jobs wait (and a handler slot is free) or the stop begins.
    async fn turn(
        &self,
        q: &Queue,
        scratch: &mut Vec<(oneshot::Sender<Response>, Response)>,
    ) -> Turn {
        // Jobs left over from the previous turn (its time budget ran out): let the tasks and
        // the I/O driver run once before taking them.
        let mut fresh = !q.has_jobs();
        loop {
            let woken = q.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            q.deliver(scratch);
            if q.stop.load(Ordering::SeqCst) {
                return Turn::Stop;
            }
            if q.has_jobs() {
                if !fresh {
                    fresh = true;
                    tokio::task::yield_now().await;
                    continue;
                }
                if self.slots.available() {
                    return Turn::Jobs;
                }
                self.slots.starved.store(true, Ordering::SeqCst);
                if self.slots.available() {
                    continue;
                }
            }
            fresh = true;
            woken.await;
        }
    }

    fn next_job(&self, q: &Queue) -> Option<Call> {
        let mut jobs = lock(&q.jobs);
        if jobs.is_empty() {
            return None;
        }
        if !self.slots.try_acquire() {
            self.slots.starved.store(true, Ordering::SeqCst);
            if !self.slots.try_acquire() {
                return None;
            }
        }
        jobs.pop_front()
    }

    fn release_slot(&self) {
        self.slots.free.fetch_add(1, Ordering::AcqRel);
        if self.slots.starved.load(Ordering::SeqCst)
            && self.slots.starved.swap(false, Ordering::SeqCst)
        {
            for s in &self.shards {
                s.queue.wake.notify_one();
            }
        }
    }

    /// Gives shard `i` to a new driver (its current one is stuck in a job).
    fn hand_over(self: &Arc<Self>, i: usize) {
        let gen = self.shards[i].queue.next_generation();
        tracing::debug!(
            shard = i,
            "a handler blocks its worker: handing the worker's connections to another thread"
        );
        self.assign(i, gen);
    }

    /// Queues "drive shard `i` as generation `gen`" for a spare thread, starting one when none
    /// is idle. If no thread can be started, the assignment waits for the next thread that
    /// becomes spare (the stuck one, at the latest, once its job returns).
    fn assign(self: &Arc<Self>, i: usize, gen: u64) {
        let mut sp = lock(&self.spares);
        sp.pending.push_back((i, gen));
        if sp.idle >= sp.pending.len() {
            drop(sp);
            self.spare_cv.notify_one();
            return;
        }
        drop(sp);
        if let Err(e) = self.start_runner() {
            tracing::warn!("cannot start a worker thread: {e}");
        }
    }

    fn start_runner(self: &Arc<Self>) -> std::io::Result<()> {
        let me = Arc::new(Runner {
            shard: AtomicUsize::new(NO_SHARD),
            ..Runner::default()
        });
        lock(&self.runners).push(me.clone());
        let inner = self.clone();
        let registered = me.clone();
        let spawned = std::thread::Builder::new()
            .name("graceserve".into())
            .spawn(move || inner.runner_main(me));
        match spawned {
            Ok(h) => {
                let mut threads = lock(&self.threads);
                threads.retain(|t| !t.is_finished());
                threads.push(h);
                Ok(())
            }
            Err(e) => {
                lock(&self.runners).retain(|r| !Arc::ptr_eq(r, &registered));
                Err(e)
            }
        }
    }

    fn runner_main(self: Arc<Self>, me: Arc<Runner>) {
        sys::thread_start();
        (self.on_start)();
        while let Some((i, gen)) = self.next_assignment() {
            me.gen.store(gen, Ordering::SeqCst);
            me.shard.store(i, Ordering::SeqCst);
            let exit = self.drive(&me, i, gen);
            me.shard.store(NO_SHARD, Ordering::SeqCst);
            if let Exit::Stopped = exit {
                break;
            }
        }
        lock(&self.runners).retain(|r| !Arc::ptr_eq(r, &me));
    }

    /// Waits for a shard to drive; None at the stop or after `SPARE_KEEPALIVE` idle.
    fn next_assignment(&self) -> Option<(usize, u64)> {
        let mut sp = lock(&self.spares);
        let mut idle_since = Instant::now();
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return None;
            }
            while let Some((i, gen)) = sp.pending.pop_front() {
                // Stale: the shard was handed over again meanwhile (or given back).
                if self.shards[i].queue.gen.load(Ordering::SeqCst) == gen {
                    return Some((i, gen));
                }
            }
            let waited = idle_since.elapsed();
            if waited >= SPARE_KEEPALIVE {
                return None;
            }
            sp.idle += 1;
            let (g, timeout) = self
                .spare_cv
                .wait_timeout(sp, SPARE_KEEPALIVE - waited)
                .unwrap_or_else(|e| e.into_inner());
            sp = g;
            sp.idle -= 1;
            if !timeout.timed_out() {
                idle_since = Instant::now();
            }
        }
    }

    fn watchdog_main(self: Arc<Self>) {
        sys::thread_start();
        (self.on_start)();
        let mut tick = STALL_TICK;
        let mut calm = 0u32;
        let mut last_busy = Instant::now();
        while !self.stopping.load(Ordering::SeqCst) {
            if last_busy.elapsed() >= WATCHDOG_IDLE {
                // Nothing ran for a while: sleep until a job starts (`drive` wakes us), and
                // look closely again then.
                self.watchdog_parked.store(true, Ordering::SeqCst);
                if !self.any_busy() && !self.stopping.load(Ordering::SeqCst) {
                    std::thread::park();
                }
                self.watchdog_parked.store(false, Ordering::SeqCst);
                last_busy = Instant::now();
                tick = STALL_TICK;
                calm = 0;
                continue;
            }
            std::thread::park_timeout(tick);
            let (busy, handed_over) = self.look();
            if busy {
                last_busy = Instant::now();
            }
            if handed_over {
                tick = STALL_TICK;
                calm = 0;
            } else if calm < CALM_LOOKS {
                calm += 1;
            } else {
                tick = (tick * 2).min(MAX_TICK);
            }
        }
    }

    fn any_busy(&self) -> bool {
        lock(&self.runners)
            .iter()
            .any(|r| r.busy.load(Ordering::SeqCst) & 1 != 0)
    }

    /// One look at every thread; hands over the shards of threads stuck since the previous
    /// look. Returns whether any thread was inside a job, and whether a shard was handed over.
    fn look(self: &Arc<Self>) -> (bool, bool) {
        let mut stuck = Vec::new();
        let mut any = false;
        for r in lock(&self.runners).iter() {
            let b = r.busy.load(Ordering::SeqCst);
            if b & 1 == 0 {
                r.seen.store(0, Ordering::Relaxed);
                continue;
            }
            any = true;
            if r.seen.swap(b, Ordering::Relaxed) == b {
                let i = r.shard.load(Ordering::SeqCst);
                if i != NO_SHARD
                    && self.shards[i].queue.gen.load(Ordering::SeqCst)
                        == r.gen.load(Ordering::SeqCst)
                {
                    stuck.push(i);
                }
            }
        }
        let handed_over = !stuck.is_empty();
        for i in stuck {
            self.hand_over(i);
        }
        (any, handed_over)
    }
}

/// Where connections go and how they reach their shard.
pub(crate) struct Placement {
    shards: Vec<(tokio::runtime::Handle, Arc<Queue>)>,
}

impl Placement {
    /// Runs a new connection on the shard with the fewest open connections (the accepting
    /// shard on a tie). `serve` gets the stream, registered with that shard's runtime, and the
    /// shard's job queue. Called by the accept loop, which runs on the first shard.
    pub(crate) fn spawn<F, Fut>(&self, stream: sys::Stream, serve: F)
    where
        F: FnOnce(sys::Stream, Arc<Queue>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut best = 0;
        if self.shards.len() > 1 {
            let mut least = usize::MAX;
            for (i, (_, q)) in self.shards.iter().enumerate() {
                let n = q.conns.load(Ordering::Relaxed);
                if n < least {
                    least = n;
                    best = i;
                }
            }
        }
        let (handle, q) = &self.shards[best];
        let q = q.clone();
        q.conns.fetch_add(1, Ordering::Relaxed);
        let run = move |stream| async move {
            let _open = Open(q.clone());
            serve(stream, q).await;
        };
        if best == 0 {
            // Already registered with this runtime (the accepting one): no move needed.
            tokio::spawn(run(stream));
        } else {
            sys::move_stream(handle, stream, run);
        }
    }
}

/// Counts a connection on its shard while it is open.
struct Open(Arc<Queue>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.conns.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The shards, and (natively) the threads that drive them.
pub(crate) struct Workers {
    inner: Option<Arc<Inner>>,
}

impl Workers {
    /// Builds one runtime per worker; natively starts a thread per runtime and the watchdog.
    /// `on_start` runs first on every thread the workers (or their runtimes) start.
    pub(crate) fn start(
        cfg: &Config,
        on_start: Arc<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<Workers> {
        let n = if sys::THREADS {
            cfg.effective_workers().max(1)
        } else {
            1
        };
        let mut shards = Vec::with_capacity(n);
        for _ in 0..n {
            shards.push(Shard {
                rt: Some(sys::runtime(cfg, on_start.clone())?),
                queue: Arc::new(Queue::new()),
            });
        }
        let inner = Arc::new(Inner {
            shards,
            slots: Slots {
                free: AtomicUsize::new(cfg.handler_threads.max(1)),
                starved: AtomicBool::new(false),
            },
            spares: Mutex::new(Spares::default()),
            spare_cv: Condvar::new(),
            runners: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            watchdog_parked: AtomicBool::new(false),
            watchdog: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
            on_start,
        });
        let workers = Workers { inner: Some(inner) };
        if sys::THREADS {
            let inner = workers.inner();
            for i in 0..n {
                lock(&inner.spares).pending.push_back((i, 0));
                inner.start_runner()?;
            }
            let wd = inner.clone();
            let h = std::thread::Builder::new()
                .name("graceserve-watchdog".into())
                .spawn(move || wd.watchdog_main())?;
            *lock(&inner.watchdog) = Some(h.thread().clone());
            lock(&inner.threads).push(h);
        }
        Ok(workers)
    }

    fn inner(&self) -> &Arc<Inner> {
        self.inner.as_ref().expect("workers used after shutdown")
    }

    /// The first shard's runtime: the accept loop, signals and the outcome run there.
    pub(crate) fn runtime(&self) -> &tokio::runtime::Runtime {
        self.inner().shards[0]
            .rt
            .as_ref()
            .expect("runtime present until shutdown")
    }

    /// Sets what runs the handler calls queued on every shard (once).
    pub(crate) fn set_target(&self, target: Target) {
        for s in &self.inner().shards {
            let _ = s.queue.target.set(target.clone());
        }
    }

    /// The shards' queues, to tell their threads to stop from inside the runtime (see
    /// [`Queue::stop`]); holding them keeps no runtime alive.
    pub(crate) fn queues(&self) -> Vec<Arc<Queue>> {
        self.inner()
            .shards
            .iter()
            .map(|s| s.queue.clone())
            .collect()
    }

    /// How connections are placed on shards.
    pub(crate) fn placement(&self) -> Placement {
        Placement {
            shards: self
                .inner()
                .shards
                .iter()
                .map(|s| {
                    (
                        s.rt.as_ref().expect("runtime present").handle().clone(),
                        s.queue.clone(),
                    )
                })
                .collect(),
        }
    }

    /// Stops the threads and the runtimes. With `join`, waits for every thread and shuts the
    /// runtimes down here (nothing may be stuck in host code, or this would wait on the host);
    /// otherwise leaves them to the last thread that finishes.
    pub(crate) fn shutdown(&mut self, join: bool) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        {
            // Under the spares lock, so a thread about to wait for an assignment sees it.
            let _sp = lock(&inner.spares);
            inner.stopping.store(true, Ordering::SeqCst);
        }
        for s in &inner.shards {
            s.queue.stop();
        }
        inner.spare_cv.notify_all();
        if let Some(t) = lock(&inner.watchdog).as_ref() {
            t.unpark();
        }
        if !join {
            tracing::debug!("leaving threads stuck in handlers behind");
            return;
        }
        // The watchdog may start a thread while it stops: join until none is left.
        loop {
            let threads = std::mem::take(&mut *lock(&inner.threads));
            if threads.is_empty() {
                break;
            }
            for t in threads {
                let _ = t.join();
            }
        }
        *lock(&inner.watchdog) = None;
        match Arc::try_unwrap(inner) {
            Ok(inner) => {
                for s in inner.shards {
                    // Jobs and answers left over from a forced stop go with the runtime, so the
                    // host's userdata is dropped before `wait` returns.
                    lock(&s.queue.jobs).clear();
                    lock(&s.queue.deferred).answers.clear();
                    if let Some(rt) = s.rt {
                        rt.shutdown_timeout(Duration::from_secs(2));
                    }
                }
            }
            Err(_) => tracing::debug!("a worker thread still holds the runtimes"),
        }
    }
}

impl AsRef<tokio::runtime::Runtime> for Workers {
    fn as_ref(&self) -> &tokio::runtime::Runtime {
        self.runtime()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.shutdown(true);
    }
}
