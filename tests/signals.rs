//! The library's own signal handling, with real signals, in its own test process (signal
//! dispositions are process-wide, so every check runs in one test function, in order).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use graceserve::{Config, Reply, Request, Server, SignalPolicy, StopCause};

static CUSTOM_CALLS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn custom_handler(_sig: libc::c_int) {
    CUSTOM_CALLS.fetch_add(1, Ordering::SeqCst);
}

fn current_action(sig: libc::c_int) -> libc::sigaction {
    // SAFETY: querying the current action into a zeroed struct.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut old), 0);
        old
    }
}

fn library_config() -> Config {
    Config {
        signals: SignalPolicy::Library,
        signal_drain_timeout: Duration::from_secs(10),
        ..Config::new("127.0.0.1:0")
    }
}

#[test]
fn library_signal_handlers_drain_chain_force_and_restore() {
    // A host's own custom SIGTERM handler, installed before the server.
    // SAFETY: installing a plain handler that only touches an atomic.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = custom_handler as *const () as usize;
        libc::sigemptyset(&mut act.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGTERM, &act, std::ptr::null_mut()),
            0
        );
    }
    let before = current_action(libc::SIGTERM).sa_sigaction;

    // 1. A signal with nothing in flight: graceful, exit status 0, custom handler chained,
    //    the previous actions restored afterwards.
    let s = Server::start(library_config(), None).unwrap();
    let during = current_action(libc::SIGTERM);
    assert_ne!(during.sa_sigaction, before, "library handler installed");
    assert!(during.sa_flags & libc::SA_ONSTACK != 0, "SA_ONSTACK set");
    assert!(during.sa_flags & libc::SA_RESTART != 0, "SA_RESTART set");
    assert!(during.sa_flags & libc::SA_SIGINFO != 0, "SA_SIGINFO set");
    assert_eq!(get(s.local_addr(), "/").status, 200);
    // SAFETY: raising a signal whose handler is async-signal-safe.
    unsafe { libc::raise(libc::SIGTERM) };
    let o = s
        .wait_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("signal stops the server");
    assert_eq!(o.cause, StopCause::GracefulSignal, "{}", o.message);
    assert_eq!(o.exit_status(), 0);
    assert_eq!(
        CUSTOM_CALLS.load(Ordering::SeqCst),
        1,
        "previous custom handler chained"
    );
    assert_eq!(
        current_action(libc::SIGTERM).sa_sigaction,
        before,
        "SIGTERM restored"
    );
    drop(s);

    // 2. SIGINT during an in-flight request drains; a second signal forces (exit status 1).
    let hung: Arc<Mutex<Vec<Reply>>> = Arc::default();
    let h2 = hung.clone();
    let handler = Arc::new(move |_r: Request, reply: Reply| h2.lock().unwrap().push(reply));
    let s = Server::start(library_config(), Some(handler)).unwrap();
    let addr = s.local_addr();
    std::thread::spawn(move || {
        let mut c = connect(addr);
        let _ = roundtrip(&mut c, "GET", "/hang", b"");
    });
    assert!(eventually(Duration::from_secs(5), || hung
        .lock()
        .unwrap()
        .len()
        == 1));
    // SAFETY: as above.
    unsafe { libc::raise(libc::SIGINT) };
    assert!(
        s.wait_timeout(Duration::from_millis(300))
            .unwrap()
            .is_none(),
        "the drain waits for the in-flight request"
    );
    // New connections are refused during the drain.
    assert!(eventually(Duration::from_secs(2), || {
        std::net::TcpStream::connect(addr).is_err()
    }));
    // SAFETY: as above.
    unsafe { libc::raise(libc::SIGTERM) };
    let o = s
        .wait_timeout(Duration::from_secs(3))
        .unwrap()
        .expect("second signal forces");
    assert_eq!(o.cause, StopCause::ForcedSecondSignal, "{}", o.message);
    assert_eq!(o.exit_status(), 1);
    drop(s);

    // 3. Signals that arrived while no server ran do not stop the next one.
    assert!(
        !graceserve::notify_signal(libc::SIGTERM),
        "no server listens now"
    );
    let s = Server::start(library_config(), None).unwrap();
    assert!(s
        .wait_timeout(Duration::from_millis(200))
        .unwrap()
        .is_none());
    assert!(graceserve::notify_signal(libc::SIGTERM));
    assert_eq!(
        s.wait_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap()
            .cause,
        StopCause::GracefulSignal
    );
    // SIGINT was restored to the default action.
    assert_eq!(current_action(libc::SIGINT).sa_sigaction, libc::SIG_DFL);
}
