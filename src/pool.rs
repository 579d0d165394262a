//! Always-ready handler threads in front of tokio's blocking pool.
//!
//! Handing every request to `spawn_blocking` grows the blocking pool to one thread per
//! concurrent request and pays a context switch to a cold thread each time (measured: a C
//! callback cost 3.5x the CPU of an inline one). A few hot threads that take requests in turn
//! batch naturally under load. A request is only queued when a hot thread is waiting for it,
//! so it never sits behind a slow handler: when every hot thread is busy, the request goes to
//! the blocking pool as before, and slow handlers still get threads of their own.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Hot threads blocked in `Condvar::wait`.
    waiting: usize,
    stopping: bool,
    /// The hot threads are the whole handler budget: queue even when all are busy.
    exclusive: bool,
}

/// A fixed set of hot handler threads.
pub(crate) struct HandlerPool {
    state: Mutex<State>,
    ready: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl HandlerPool {
    /// Starts `n` threads; each runs `on_start` first. With `exclusive`, these threads are the
    /// whole handler budget and requests queue for them; otherwise a request that finds no
    /// waiting thread overflows to the blocking pool. Threads that fail to start are skipped.
    pub(crate) fn start(n: usize, exclusive: bool, on_start: fn()) -> Arc<HandlerPool> {
        let pool = Arc::new(HandlerPool {
            state: Mutex::new(State {
                exclusive,
                ..State::default()
            }),
            ready: Condvar::new(),
            threads: Mutex::new(Vec::new()),
        });
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let p = pool.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("graceserve-handler-{i}"))
                .spawn(move || {
                    on_start();
                    p.run();
                });
            match spawned {
                Ok(h) => threads.push(h),
                Err(e) => tracing::warn!("cannot start handler thread: {e}"),
            }
        }
        if threads.is_empty() {
            // Nothing to queue for: every request takes the blocking pool.
            pool.state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .exclusive = false;
        }
        *pool.threads.lock().unwrap_or_else(|e| e.into_inner()) = threads;
        pool
    }

    /// Gives `job` to a waiting hot thread, or hands it back when none is free.
    pub(crate) fn try_submit(&self, job: Job) -> Result<(), Job> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Every queued job needs a distinct waiting thread, or it could wait behind a slow one.
        if st.stopping || (!st.exclusive && st.waiting <= st.queue.len()) {
            return Err(job);
        }
        st.queue.push_back(job);
        drop(st);
        self.ready.notify_one();
        Ok(())
    }

    fn run(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(job) = st.queue.pop_front() {
                drop(st);
                job();
                st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            if st.stopping {
                return;
            }
            st.waiting += 1;
            st = self.ready.wait(st).unwrap_or_else(|e| e.into_inner());
            st.waiting -= 1;
        }
    }

    /// Stops the threads once the queue is empty; with `join`, waits for them (only when no
    /// handler is stuck in host code, or this would wait on the host).
    pub(crate) fn stop(&self, join: bool) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stopping = true;
        self.ready.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        if join {
            for t in threads {
                let _ = t.join();
            }
        }
    }
}
