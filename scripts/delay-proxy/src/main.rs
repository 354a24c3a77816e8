//! delay-proxy: a TCP proxy that adds a fixed round-trip latency to every
//! request, for `scripts/bench` (docs/benchmark.md). It stands in for
//! `tc netem delay` on both ends of a link, which this kernel lacks.
//!
//! Every chunk read from either side is written to the other side half the
//! round trip later, so a request and its answer over a kept connection pay
//! the whole delay once, and pipelined chunks do not wait for each other
//! (the delay adds latency, never a bandwidth limit). A new connection pays
//! one more round trip before its first byte moves, like TCP's handshake over
//! a real link, so connection reuse counts as it does against S3.
//!
//! One thread (a current-thread runtime): its CPU is what the benchmark
//! measures and shows, to prove the proxy is not the bottleneck.
//!
//! Usage: delay-proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:9091 --delay-ms 30
//! It prints `listening on ADDR` once it accepts connections, and a line
//! `accepted PEER` on stderr for every connection.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

struct Args {
    listen: SocketAddr,
    upstream: SocketAddr,
    /// Half the round trip: what each direction adds.
    one_way: Duration,
}

fn args() -> Result<Args, String> {
    let mut listen = None;
    let mut upstream = None;
    let mut delay_ms = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = Some(value.parse().map_err(|e| format!("--listen {value}: {e}"))?),
            "--upstream" => upstream = Some(value.parse().map_err(|e| format!("--upstream {value}: {e}"))?),
            "--delay-ms" => delay_ms = Some(value.parse::<f64>().map_err(|e| format!("--delay-ms {value}: {e}"))?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let usage = "usage: delay-proxy --listen ADDR --upstream ADDR --delay-ms MS";
    Ok(Args {
        listen: listen.ok_or(usage)?,
        upstream: upstream.ok_or(usage)?,
        one_way: Duration::from_secs_f64(delay_ms.ok_or(usage)?.max(0.0) / 2000.0),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("delay-proxy: {e}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("delay-proxy: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on {addr}"),
        Err(e) => eprintln!("delay-proxy: {e}"),
    }
    loop {
        let client = match listener.accept().await {
            Ok((client, peer)) => {
                // One line per connection: the benchmark counts them (connection reuse).
                eprintln!("accepted {peer}");
                client
            }
            Err(e) => {
                eprintln!("delay-proxy: accept: {e}");
                continue;
            }
        };
        let (upstream, one_way) = (args.upstream, args.one_way);
        tokio::spawn(async move {
            if let Err(e) = serve(client, upstream, one_way).await {
                // Resets at the end of a run are normal; anything else shows here.
                if e.kind() != io::ErrorKind::ConnectionReset && e.kind() != io::ErrorKind::BrokenPipe {
                    eprintln!("delay-proxy: {e}");
                }
            }
        });
    }
}

/// One connection: the handshake's round trip, then both directions delayed.
async fn serve(client: TcpStream, upstream: SocketAddr, one_way: Duration) -> io::Result<()> {
    let accepted = Instant::now();
    client.set_nodelay(true)?;
    let server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    tokio::time::sleep_until(accepted + one_way * 2).await;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::try_join!(
        pump(client_read, server_write, one_way),
        pump(server_read, client_write, one_way)
    )?;
    Ok(())
}

/// Copies one direction, each chunk written `delay` after it was read. The
/// queue between reader and writer holds what one delay's worth of traffic
/// brings, no more.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) -> io::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, io::Error>(());
            }
            // The writer only stops on an error, which the join reports.
            let _ = tx.send((Instant::now() + delay, buf[..n].to_vec()));
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            to.write_all(&chunk).await?;
        }
        to.shutdown().await
    };
    let (read, written) = tokio::join!(reader, writer);
    read.and(written)
}
