//! The lifecycle of the core, driven through the Rust API over real loopback sockets:
//! what a user notices (statuses, bodies, `Connection: close`, refused connections, exit
//! statuses, the port being free again).

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use graceserve::{Config, Reply, Request, Server, StartErrorKind, StopCause};

fn cfg() -> Config {
    Config::new("127.0.0.1:0")
}

/// Routes like the host contract: `/`, `/sleep?ms=N`, `/echo`, `/panic`, `/hang`, 404.
fn contract_handler(hung: Arc<Mutex<Vec<Reply>>>) -> Arc<dyn graceserve::Handler> {
    Arc::new(move |req: Request, reply: Reply| {
        let ok = |r: Reply, status: u16, body: Vec<u8>| {
            let _ = r.send_parts(status, [], body);
        };
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/") => ok(reply, 200, b"OK".to_vec()),
            ("GET", "/sleep") => {
                let ms: u64 = req
                    .query
                    .strip_prefix("ms=")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                std::thread::sleep(Duration::from_millis(ms));
                ok(reply, 200, format!("slept {ms}").into_bytes())
            }
            ("POST", "/echo") => ok(reply, 200, req.body.to_vec()),
            ("GET", "/panic") => panic!("handler exploded"),
            ("GET", "/hang") => hung.lock().unwrap().push(reply),
            ("GET", "/drop") => drop(reply),
            _ => ok(reply, 404, b"not found".to_vec()),
        }
    })
}

fn start() -> (Server, Arc<Mutex<Vec<Reply>>>) {
    let hung = Arc::new(Mutex::new(Vec::new()));
    let s = Server::start(cfg(), Some(contract_handler(hung.clone()))).expect("start");
    (s, hung)
}

/// Sends a request in the background; the receiver gets the response (or the error).
fn spawn_request(addr: SocketAddr, path: &str) -> mpsc::Receiver<std::io::Result<Resp>> {
    let (tx, rx) = mpsc::channel();
    let path = path.to_string();
    let mut s = connect(addr);
    std::thread::spawn(move || {
        let _ = tx.send(roundtrip(&mut s, "GET", &path, b""));
    });
    rx
}

fn wait_active_requests(s: &Server, n: u64) {
    assert!(
        eventually(Duration::from_secs(10), || s.stats().requests_active >= n),
        "requests never became active: {:?}",
        s.stats()
    );
}

#[test]
fn builtin_handler_answers_ok_on_h1() {
    let s = Server::start(cfg(), None).unwrap();
    let r = get(s.local_addr(), "/anything");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"OK");
    let o = s.shutdown(Some(Duration::from_secs(1))).unwrap();
    assert_eq!(o.cause, StopCause::GracefulCall);
    assert_eq!(o.exit_status(), 0);
}

#[test]
fn routes_echo_404_and_keepalive_reuse() {
    let (s, _) = start();
    let mut c = connect(s.local_addr());
    let r = roundtrip(&mut c, "POST", "/echo", b"hello \x00\xff bytes").unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"hello \x00\xff bytes"[..])
    );
    // Same connection, second request: keep-alive works.
    let r = roundtrip(&mut c, "GET", "/missing", b"").unwrap();
    assert_eq!(r.status, 404);
    let r = roundtrip(&mut c, "GET", "/sleep?ms=10", b"").unwrap();
    assert_eq!(r.body, b"slept 10");
    assert_eq!(s.stats().connections_total, 1);
    s.shutdown(Some(Duration::from_secs(2))).unwrap();
}

#[test]
fn panicking_and_dropping_handlers_get_500_and_server_lives() {
    let (s, _) = start();
    assert_eq!(get(s.local_addr(), "/panic").status, 500);
    assert_eq!(get(s.local_addr(), "/drop").status, 500);
    assert_eq!(get(s.local_addr(), "/").status, 200);
    assert!(s
        .shutdown(Some(Duration::from_secs(2)))
        .unwrap()
        .cause
        .is_graceful());
}

#[test]
fn oversize_body_gets_413() {
    let mut c = cfg();
    c.max_body_bytes = 1024;
    let s = Server::start(c, None).unwrap();
    let mut conn = connect(s.local_addr());
    let r = roundtrip(&mut conn, "POST", "/echo", &vec![b'x'; 4096]).unwrap();
    assert_eq!(r.status, 413);
    s.shutdown(Some(Duration::from_secs(1))).unwrap();
}

#[test]
fn inflight_request_completes_with_connection_close_and_new_connections_are_refused() {
    let (s, _) = start();
    let addr = s.local_addr();
    let rx = spawn_request(addr, "/sleep?ms=600");
    wait_active_requests(&s, 1);
    let t0 = Instant::now();
    s.begin_shutdown(Some(Duration::from_secs(5)));
    // The listener closes at once: a new connection is refused.
    assert!(eventually(Duration::from_secs(2), || TcpStream::connect(
        addr
    )
    .is_err()));
    let r = rx.recv().unwrap().expect("in-flight response");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"slept 600");
    assert_eq!(r.header("connection"), Some("close"));
    let o = s.wait().unwrap();
    assert_eq!(o.cause, StopCause::GracefulCall, "{}", o.message);
    assert!(t0.elapsed() < Duration::from_secs(5));
    // The port is free again.
    TcpListener::bind(addr).expect("port free after stop");
}

#[test]
fn idle_silent_and_half_sent_connections_do_not_delay_the_stop() {
    let (s, _) = start();
    let addr = s.local_addr();
    let mut idle: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut c = connect(addr);
            assert_eq!(roundtrip(&mut c, "GET", "/", b"").unwrap().status, 200);
            c
        })
        .collect();
    let mut silent: Vec<TcpStream> = (0..20).map(|_| connect(addr)).collect();
    let mut half: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut c = connect(addr);
            c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Partial: ")
                .unwrap();
            c
        })
        .collect();
    assert!(eventually(Duration::from_secs(5), || s
        .stats()
        .connections_active
        == 90));
    let t0 = Instant::now();
    let o = s.shutdown(Some(Duration::from_secs(10))).unwrap();
    let took = t0.elapsed();
    assert_eq!(o.cause, StopCause::GracefulCall, "{}", o.message);
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    for c in idle
        .iter_mut()
        .chain(silent.iter_mut())
        .chain(half.iter_mut())
    {
        assert!(
            closed_within(c, Duration::from_secs(2)),
            "connection left open"
        );
    }
}

#[test]
fn deadline_forces_and_reports_exit_status_1() {
    let (s, hung) = start();
    let addr = s.local_addr();
    let rx = spawn_request(addr, "/hang");
    assert!(eventually(Duration::from_secs(5), || hung
        .lock()
        .unwrap()
        .len()
        == 1));
    let t0 = Instant::now();
    let o = s.shutdown(Some(Duration::from_millis(300))).unwrap();
    let took = t0.elapsed();
    assert_eq!(o.cause, StopCause::ForcedDeadline);
    assert_eq!(o.exit_status(), 1);
    assert!(o.message.contains("deadline"), "{}", o.message);
    assert!(
        took >= Duration::from_millis(290),
        "forced too early: {took:?}"
    );
    assert!(
        took < Duration::from_millis(1300),
        "forced too late: {took:?}"
    );
    // The client saw its connection cut, not an answer.
    assert!(rx.recv().unwrap().is_err());
    // The hung reply now knows the client is gone.
    let r = hung.lock().unwrap().pop().unwrap();
    assert!(r.is_closed());
    assert!(r.send_parts(200, [], "late").is_err());
}

#[test]
fn signal_drains_then_second_signal_forces() {
    let (s, hung) = start();
    let _rx = spawn_request(s.local_addr(), "/hang");
    assert!(eventually(Duration::from_secs(5), || hung
        .lock()
        .unwrap()
        .len()
        == 1));
    s.signal(15);
    assert!(
        s.wait_timeout(Duration::from_millis(200))
            .unwrap()
            .is_none(),
        "drain must wait for the in-flight request"
    );
    s.signal(15);
    let o = s
        .wait_timeout(Duration::from_secs(3))
        .unwrap()
        .expect("second signal stops");
    assert_eq!(o.cause, StopCause::ForcedSecondSignal);
    assert_eq!(o.exit_status(), 1);
}

#[test]
fn signal_with_nothing_in_flight_is_graceful() {
    let (s, _) = start();
    assert_eq!(get(s.local_addr(), "/").status, 200);
    s.signal(2);
    let o = s.wait().unwrap();
    assert_eq!(o.cause, StopCause::GracefulSignal);
    assert_eq!(o.exit_status(), 0);
}

#[test]
fn shutdown_is_idempotent_and_concurrent() {
    let (s, _) = start();
    let s = Arc::new(s);
    let rx = spawn_request(s.local_addr(), "/sleep?ms=300");
    wait_active_requests(&s, 1);
    let outcomes: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                s.shutdown(Some(Duration::from_millis(2000 + i * 100)))
                    .unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert!(outcomes.iter().all(|o| o.cause == StopCause::GracefulCall));
    assert_eq!(rx.recv().unwrap().unwrap().body, b"slept 300");
    assert_eq!(s.shutdown(None).unwrap().cause, StopCause::GracefulCall);
    assert_eq!(s.wait().unwrap().cause, StopCause::GracefulCall);
}

#[test]
fn restart_on_the_same_port_in_process() {
    let first = Server::start(cfg(), None).unwrap();
    let addr = first.local_addr();
    // Leave a connection in TIME_WAIT on our side of the port.
    assert_eq!(get(addr, "/").status, 200);
    first.shutdown(Some(Duration::from_secs(1))).unwrap();
    for _ in 0..3 {
        let s = Server::start(Config::new(addr.to_string()), None).expect("restart on same port");
        assert_eq!(get(addr, "/").status, 200);
        assert!(s
            .shutdown(Some(Duration::from_secs(1)))
            .unwrap()
            .cause
            .is_graceful());
    }
}

#[test]
fn bind_failures_name_the_address_and_the_os_error() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let e = Server::start(Config::new(addr.clone()), None).unwrap_err();
    assert_eq!(e.kind, StartErrorKind::AddrInUse);
    assert!(e.message.contains(&addr), "{}", e.message);
    assert!(e.message.to_lowercase().contains("in use"), "{}", e.message);
    assert_eq!(e.cause(), StopCause::BindFailed);
    assert_eq!(e.cause().exit_status(), 1);

    for bad in ["nonsense", "127.0.0.1", "127.0.0.1:99999", ""] {
        let e = Server::start(Config::new(bad), None).unwrap_err();
        assert_eq!(
            e.kind,
            StartErrorKind::InvalidAddress,
            "{bad}: {}",
            e.message
        );
        assert!(e.message.contains(&format!("{bad:?}")), "{}", e.message);
    }
    // An address this host does not have.
    let e = Server::start(Config::new("192.0.2.1:0"), None).unwrap_err();
    assert_eq!(e.kind, StartErrorKind::Bind, "{}", e.message);
}

#[test]
fn reply_later_from_another_thread_and_streaming() {
    let handler = Arc::new(|req: Request, reply: Reply| {
        std::thread::spawn(move || {
            if req.path == "/stream" {
                let w = reply
                    .stream(200, [(&b"x-kind"[..], &b"stream"[..])])
                    .unwrap();
                for i in 0..5 {
                    w.write_blocking(format!("chunk{i};")).unwrap();
                }
            } else {
                std::thread::sleep(Duration::from_millis(20));
                reply.send_parts(201, [], "later").unwrap();
            }
        });
    });
    let s = Server::start(cfg(), Some(handler)).unwrap();
    let r = get(s.local_addr(), "/later");
    assert_eq!((r.status, r.body.as_slice()), (201, &b"later"[..]));
    let r = get(s.local_addr(), "/stream");
    assert_eq!(r.header("x-kind"), Some("stream"));
    assert_eq!(r.body, b"chunk0;chunk1;chunk2;chunk3;chunk4;");
    s.shutdown(Some(Duration::from_secs(1))).unwrap();
}

#[test]
fn concurrent_requests_run_handlers_in_parallel() {
    let seen = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (seen2, peak2) = (seen.clone(), peak.clone());
    let handler = Arc::new(move |_req: Request, reply: Reply| {
        let now = seen2.fetch_add(1, Ordering::SeqCst) + 1;
        peak2.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
        seen2.fetch_sub(1, Ordering::SeqCst);
        reply.send_parts(200, [], "ok").unwrap();
    });
    let s = Server::start(cfg(), Some(handler)).unwrap();
    let addr = s.local_addr();
    let t0 = Instant::now();
    let hs: Vec<_> = (0..16)
        .map(|_| std::thread::spawn(move || get(addr, "/").status))
        .collect();
    assert!(hs.into_iter().all(|h| h.join().unwrap() == 200));
    // Sixteen 200 ms handlers on a 2-core machine: only parallel handler threads finish in time.
    assert!(
        peak.load(Ordering::SeqCst) >= 8,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
    s.shutdown(Some(Duration::from_secs(1))).unwrap();
}

#[test]
fn http2_request_is_served_and_goaway_follows_the_drain() {
    use http_body_util::{BodyExt, Empty};
    let (s, _) = start();
    let addr = s.local_addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .unwrap();
        let conn_task = tokio::spawn(conn);
        let req = |path: &str| {
            http::Request::get(format!("http://{addr}{path}"))
                .body(Empty::<bytes::Bytes>::new())
                .unwrap()
        };
        let r = send.send_request(req("/")).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.version(), http::Version::HTTP_2);
        assert_eq!(r.into_body().collect().await.unwrap().to_bytes(), "OK");
        // An in-flight stream, then the drain: the stream completes, then the server sends
        // GOAWAY and the connection ends cleanly.
        let inflight = tokio::spawn(send.send_request(req("/sleep?ms=400")));
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.begin_shutdown(Some(Duration::from_secs(5)));
        let r = inflight.await.unwrap().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.into_body().collect().await.unwrap().to_bytes(),
            "slept 400"
        );
        let ended = tokio::time::timeout(Duration::from_secs(3), conn_task).await;
        assert!(ended.is_ok(), "h2 connection not closed after GOAWAY");
    });
    let o = s.wait().unwrap();
    assert_eq!(o.cause, StopCause::GracefulCall, "{}", o.message);
}

#[test]
fn slowloris_neither_starves_clients_nor_holds_the_drain() {
    // SAFETY: raising our own soft fd limit to the hard one (1,000 sockets on both sides).
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
    let (s, _) = start();
    let addr = s.local_addr();
    // 250 clients stuck in half-sent headers, 250 trickling a body they never finish.
    let mut slow: Vec<TcpStream> = (0..500)
        .map(|i| {
            let mut c = connect(addr);
            if i % 2 == 0 {
                c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a")
                    .unwrap();
            } else {
                c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nab")
                    .unwrap();
            }
            c
        })
        .collect();
    assert!(eventually(Duration::from_secs(10), || s
        .stats()
        .connections_active
        >= 500));
    for c in slow.iter_mut().take(20) {
        let _ = c.write_all(b"b");
    }
    // A normal client is served promptly in the middle of it.
    let t0 = Instant::now();
    let r = get(addr, "/");
    assert_eq!(r.status, 200);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "normal client waited {:?}",
        t0.elapsed()
    );
    // The half-sent heads close at once; the slow bodies are in-flight requests the deadline
    // cuts: the stop takes the deadline, not the clients' pace.
    let t0 = Instant::now();
    let o = s.shutdown(Some(Duration::from_millis(500))).unwrap();
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(1500), "stop took {took:?}");
    assert_eq!(o.cause, StopCause::ForcedDeadline, "{}", o.message);
    for c in slow.iter_mut() {
        assert!(
            closed_within(c, Duration::from_secs(2)),
            "slow client left open"
        );
    }
}

#[test]
fn keepalive_idle_timeout_closes_idle_connections_only() {
    let mut c = cfg();
    c.keepalive_idle_timeout = Duration::from_millis(300);
    c.header_read_timeout = Duration::from_secs(30);
    let s = Server::start(c, None).unwrap();
    let addr = s.local_addr();
    let mut idle = connect(addr);
    assert_eq!(roundtrip(&mut idle, "GET", "/", b"").unwrap().status, 200);
    let mut busy = connect(addr);
    // A connection in use every 100 ms outlives several idle periods.
    for _ in 0..12 {
        assert_eq!(roundtrip(&mut busy, "GET", "/", b"").unwrap().status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    // The idle one was closed by the server meanwhile.
    assert!(closed_within(&mut idle, Duration::from_millis(100)));
    assert!(s
        .shutdown(Some(Duration::from_secs(1)))
        .unwrap()
        .cause
        .is_graceful());
}
