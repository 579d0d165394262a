//! server-wasi: the graceserve example host for `wasm32-wasip2`, built on the Rust core
//! directly (docs/architecture.md §5 The host contract).
//!
//! ```text
//! server-wasi [--addr HOST:PORT] [--shutdown-timeout-ms N] [--drain-delay-ms N]
//!
//!   GET  /            -> 200 "OK"
//!   GET  /sleep?ms=N  -> 200 "slept N" after N ms
//!   POST /echo        -> 200, body = request body
//!   GET  /readyz      -> 200 "ready"; 503 "draining" once a drain is requested (the library)
//!   GET  /livez       -> 200 "alive" until the server stops (the library)
//!   anything else     -> 404
//! ```
//!
//! The library's lifecycle events (drain started, stopped) go to stderr, one line each.
//!
//! Prints `listening on HOST:PORT` once bound. WASI has no signals: stdin is the signal channel
//! (each byte read counts as one signal: a byte 1..=64 is that signal's number, any other
//! byte and the end of stdin stand for SIGTERM), so the first byte or EOF drains gracefully
//! and the next forces the stop. The exit status is the outcome: 0 graceful,
//! 1 bind failure or forced drain; usage errors ask for 2, but a WASI command can only report
//! success or failure, so under wasmtime they exit 1. `build/bin/server-wasi` (the launcher,
//! `launcher.py`) runs this under wasmtime, checks the flags itself so usage errors exit 2, and
//! turns real SIGINT/SIGTERM into those bytes.
//!
//! Not on WASI (the native hosts' systemd part of the contract): `--addr systemd`,
//! `systemd:NAME` and `fd:N` (no descriptors are passed into the sandbox: those addresses fail
//! the start, exit 1), `NOTIFY_SOCKET` (no unix sockets; ignored) and the SIGHUP in-place
//! upgrade (no processes to start). Zero-downtime restarts of a WASI server go through a load
//! balancer in front of several instances instead.
//!
//! Build: `RUSTFLAGS="--cfg tokio_unstable" cargo build --release --target wasm32-wasip2
//! --example wasi`. It also builds natively (where real signals drive it).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use graceserve::{Config, Reply, Request, Server, SignalPolicy};

const NAME: &str = "server-wasi";
const TEXT_PLAIN: [(&[u8], &[u8]); 1] = [(b"content-type", b"text/plain; charset=utf-8")];

fn reply(r: Reply, status: u16, body: impl Into<bytes::Bytes>) {
    // Closed: the client left or the stop was forced; nobody is there to tell.
    let _ = r.send_parts(status, TEXT_PLAIN, body);
}

/// The value of `ms` in a query string, in 0..=3600000; `None` when absent or invalid.
fn query_ms(query: &str) -> Option<u64> {
    let v = query.split('&').find_map(|kv| kv.strip_prefix("ms="))?;
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u64>().ok().filter(|&ms| ms <= 3_600_000)
}

fn handle(req: Request, r: Reply) {
    let get = req.method == http::Method::GET;
    match req.path.as_str() {
        "/" if get => reply(r, 200, "OK"),
        "/sleep" if get => {
            let Some(ms) = query_ms(&req.query) else {
                return reply(r, 400, "bad ms\n");
            };
            let answer = move |r: Reply| reply(r, 200, format!("slept {ms}"));
            // On WASI the handler runs on the runtime's only thread: wait in a task, never
            // block it. Natively the handler has a thread of its own.
            match tokio::runtime::Handle::try_current() {
                Ok(h) if cfg!(target_os = "wasi") => {
                    h.spawn(async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        answer(r);
                    });
                }
                _ => {
                    std::thread::sleep(Duration::from_millis(ms));
                    answer(r);
                }
            }
        }
        "/echo" if req.method == http::Method::POST => {
            let _ = r.send_parts(200, [], req.body);
        }
        _ => reply(r, 404, "not found\n"),
    }
}

fn usage() {
    eprintln!("usage: {NAME} [--addr HOST:PORT] [--shutdown-timeout-ms N] [--drain-delay-ms N]");
}

const FLAGS: [&str; 3] = ["--addr", "--shutdown-timeout-ms", "--drain-delay-ms"];

/// Parses the command line; `Err(status)` when the process should exit at once.
fn parse_args(args: &[String]) -> Result<Config, i32> {
    let mut cfg = Config::new(graceserve::config::DEFAULT_ADDR);
    cfg.signals = SignalPolicy::Library;
    cfg.readiness_path = Some("/readyz".into());
    cfg.liveness_path = Some("/livez".into());
    cfg.on_event = Some(graceserve::EventHook::new(|ev: &graceserve::Event| {
        eprintln!("{NAME}: {}", ev.message);
    }));
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let inline = FLAGS.iter().find_map(|f| {
            a.strip_prefix(f)
                .and_then(|rest| rest.strip_prefix('='))
                .map(|v| (*f, v))
        });
        let (flag, val) = if FLAGS.contains(&a) {
            i += 1;
            match args.get(i) {
                Some(v) => (a, v.as_str()),
                None => {
                    eprintln!("{NAME}: {a} needs a value");
                    usage();
                    return Err(2);
                }
            }
        } else if let Some(fv) = inline {
            fv
        } else if a == "-h" || a == "--help" {
            usage();
            return Err(0);
        } else {
            eprintln!("{NAME}: unknown argument {a}");
            usage();
            return Err(2);
        };
        if flag == "--addr" {
            cfg.addr = val.to_owned();
        } else {
            let ms = if !val.is_empty() && val.bytes().all(|b| b.is_ascii_digit()) {
                val.parse::<u32>().ok().filter(|&n| n < u32::MAX)
            } else {
                None
            };
            let Some(ms) = ms else {
                eprintln!("{NAME}: invalid {flag} {val}");
                return Err(2);
            };
            let d = Duration::from_millis(u64::from(ms));
            if flag == "--drain-delay-ms" {
                cfg.drain_delay = d;
            } else {
                cfg.signal_drain_timeout = d;
            }
        }
        i += 1;
    }
    Ok(cfg)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match parse_args(&args) {
        Ok(c) => c,
        Err(status) => std::process::exit(status),
    };
    let server = match Server::start(cfg, Some(Arc::new(handle))) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{NAME}: {e}");
            std::process::exit(1);
        }
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", server.local_addr());
        let _ = out.flush();
    }
    // main is not one of the server's threads, so the wait cannot be refused. The outcome
    // was printed by the event hook.
    let outcome = server.wait().expect("waiting from main");
    let status = outcome.exit_status();
    drop(server);
    std::process::exit(status);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn query_ms_accepts_only_a_bounded_number() {
        assert_eq!(query_ms("ms=250"), Some(250));
        assert_eq!(query_ms("x=1&ms=0"), Some(0));
        assert_eq!(query_ms("ms="), None);
        assert_eq!(query_ms("ms=-1"), None);
        assert_eq!(query_ms("ms=12a"), None);
        assert_eq!(query_ms("ms=3600001"), None);
        assert_eq!(query_ms(""), None);
    }

    #[test]
    fn flags_parse_like_the_c_host() {
        let c = parse_args(&args(&[
            "--addr",
            "127.0.0.1:0",
            "--shutdown-timeout-ms=250",
        ]))
        .unwrap();
        assert_eq!(c.addr, "127.0.0.1:0");
        assert_eq!(c.signal_drain_timeout, Duration::from_millis(250));
        assert_eq!(parse_args(&args(&["--bogus"])).unwrap_err(), 2);
        assert_eq!(parse_args(&args(&["--addr"])).unwrap_err(), 2);
        assert_eq!(
            parse_args(&args(&["--shutdown-timeout-ms", "-5"])).unwrap_err(),
            2
        );
        assert_eq!(parse_args(&args(&["--help"])).unwrap_err(), 0);
        let c = parse_args(&args(&["--drain-delay-ms", "1000", "--drain-delay-ms=250"])).unwrap();
        assert_eq!(c.drain_delay, Duration::from_millis(250));
        assert_eq!(
            parse_args(&args(&["--drain-delay-ms", "x"])).unwrap_err(),
            2
        );
        assert_eq!(c.readiness_path.as_deref(), Some("/readyz"));
        let d = parse_args(&[]).unwrap();
        assert_eq!(d.addr, "127.0.0.1:8080");
        assert_eq!(d.signal_drain_timeout, Duration::from_millis(5000));
        assert_eq!(d.drain_delay, Duration::ZERO);
    }
}
