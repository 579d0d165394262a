//! baseline-hyper: the "plain tokio + hyper" server graceserve's benchmarks compare against.
//!
//!   baseline-hyper [--addr HOST:PORT] [--proto auto|http1]
//!
//! Answers every request with `200 OK`, body `OK`, `content-type: text/plain; charset=utf-8`
//! (the same bytes graceserve's built-in handler sends). `auto` (default) serves HTTP/1.1 and
//! h2c prior knowledge on one port, as graceserve does; `http1` uses hyper's HTTP/1 connection
//! directly. Prints `listening on HOST:PORT` once bound. The runtime is tokio's default
//! multi-thread runtime (one worker per CPU in the affinity mask), hyper's defaults otherwise,
//! plus TCP_NODELAY like graceserve. SIGTERM/SIGINT: hyper-util's GracefulShutdown (stop
//! accepting, close idle connections, finish in-flight requests), exit 0.

use std::convert::Infallible;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::signal::unix::{signal, SignalKind};

async fn ok(_req: http::Request<hyper::body::Incoming>) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let mut resp = http::Response::new(Full::new(Bytes::from_static(b"OK")));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(resp)
}

fn usage() -> ! {
    eprintln!("usage: baseline-hyper [--addr HOST:PORT] [--proto auto|http1]");
    std::process::exit(2);
}

fn main() {
    let mut addr = "127.0.0.1:8080".to_string();
    let mut http1_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => addr = args.next().unwrap_or_else(|| usage()),
            "--proto" => match args.next().as_deref() {
                Some("auto") => http1_only = false,
                Some("http1") => http1_only = true,
                _ => usage(),
            },
            _ => {
                eprintln!("baseline-hyper: unknown argument {a}");
                usage()
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    std::process::exit(rt.block_on(serve(addr, http1_only)));
}

async fn serve(addr: String, http1_only: bool) -> i32 {
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("baseline-hyper: cannot listen on {addr}: {e}");
            return 1;
        }
    };
    let local = listener.local_addr().expect("local addr");
    println!("listening on {local}");
    std::io::stdout().flush().ok();

    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let h1 = {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new());
        b
    };

    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("baseline-hyper: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(stream);
        if http1_only {
            let conn = graceful.watch(h1.serve_connection(io, service_fn(ok)));
            tokio::spawn(async move {
                let _ = conn.await;
            });
        } else {
            let conn = graceful.watch(builder.serve_connection(io, service_fn(ok)).into_owned());
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    }
    drop(listener);
    graceful.shutdown().await;
    0
}
