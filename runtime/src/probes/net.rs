//! Connecting for network probes, from the agent's namespace or from inside a pod's network
//! namespace, and the tcpSocket probe itself.
//!
//! Entering a namespace changes the calling thread for good, so it is done on a thread made
//! for one connection, never on a tokio worker: the socket it connects belongs to the pod's
//! namespace and keeps working once handed back to tokio.

use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Outcome;

pub(super) async fn check(netns: Option<&Path>, host: &str, port: u16, timeout: Duration) -> Outcome {
    match connect(netns, host, port, Instant::now() + timeout).await {
        Ok(_) => Outcome::Success,
        Err(outcome) => outcome,
    }
}

/// A TCP connection to `host:port` made before `deadline`; failures come as the kubelet words
/// them ("dial tcp 10.1.0.5:80: connect: connection refused") and agent-side trouble (entering
/// the namespace) as [`Outcome::Error`].
pub(super) async fn connect(
    netns: Option<&Path>,
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<TcpStream, Outcome> {
    let addrs = resolve(host, port, deadline).await?;
    let shown = addrs[0];
    let dialed = match netns {
        None => dial_here(&addrs, deadline).await,
        Some(netns) => {
            let (tx, rx) = oneshot::channel();
            let netns = netns.to_path_buf();
            let remaining = deadline.saturating_duration_since(Instant::now());
            let spawned = std::thread::Builder::new().name("probe-netns".into()).spawn(move || {
                let _ = tx.send(enter(&netns).map(|()| dial_blocking(&addrs, remaining)));
            });
            if let Err(e) = spawned {
                return Err(Outcome::Error(format!("cannot start a thread to probe from: {e}")));
            }
            match tokio::time::timeout_at(deadline, rx).await {
                Err(_) => Err(timed_out()),
                Ok(Err(_)) => return Err(Outcome::Error("the probe thread ended without an answer".into())),
                Ok(Ok(Err(entering))) => return Err(Outcome::Error(entering)),
                Ok(Ok(Ok(dialed))) => dialed.and_then(|s| {
                    s.set_nonblocking(true)?;
                    TcpStream::from_std(s)
                }),
            }
        }
    };
    dialed.map_err(|e| Outcome::Failure(format!("dial tcp {shown}: {}", describe(&e))))
}

async fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, Outcome> {
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let lookup = |detail: String| Outcome::Failure(format!("dial tcp: lookup {host}: {detail}"));
    match tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(lookup("i/o timeout".into())),
        Ok(Err(e)) => Err(lookup(e.to_string())),
        Ok(Ok(addrs)) => {
            let addrs: Vec<_> = addrs.collect();
            if addrs.is_empty() { Err(lookup("no such host".into())) } else { Ok(addrs) }
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "i/o timeout")
}

/// Tries the addresses in turn; the last error if none answers.
async fn dial_here(addrs: &[SocketAddr], deadline: Instant) -> io::Result<TcpStream> {
    let mut last = timed_out();
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return Err(timed_out()),
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = e,
        }
    }
    Err(last)
}

fn enter(netns: &Path) -> Result<(), String> {
    let file = File::open(netns).map_err(|e| format!("cannot open network namespace {}: {e}", netns.display()))?;
    setns(&file, CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("cannot enter network namespace {}: {}", netns.display(), e.desc()))
}

fn dial_blocking(addrs: &[SocketAddr], timeout: Duration) -> io::Result<std::net::TcpStream> {
    let deadline = std::time::Instant::now() + timeout;
    let mut last = timed_out();
    for addr in addrs {
        let remaining = deadline.saturating_duration_since(std::time::Instant::now());
        if remaining.is_zero() {
            return Err(timed_out());
        }
        match std::net::TcpStream::connect_timeout(addr, remaining) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A dialing error as Go prints it: "connect: connection refused", "i/o timeout".
fn describe(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::TimedOut {
        return "i/o timeout".into();
    }
    match e.raw_os_error() {
        Some(code) => {
            let text = nix::errno::Errno::from_raw(code).desc();
            let mut chars = text.chars();
            let first = chars.next().map(|c| c.to_ascii_lowercase()).into_iter();
            format!("connect: {}", first.chain(chars).collect::<String>())
        }
        None => e.to_string(),
    }
}
