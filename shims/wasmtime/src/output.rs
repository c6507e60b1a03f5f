//! Guest stdout/stderr into the container's `LogSink`, written through as the guest writes,
//! in bounded chunks, paced by a per-container byte budget shared by both streams: a guest
//! that floods output waits (asynchronously) instead of costing unbounded CPU, disk or memory.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wharf_shim::{LogSink, Stream};

/// Most bytes handed to the sink in one call.
const CHUNK: usize = 64 << 10;

/// A token bucket of output bytes: `rate` per second, at most one second's worth saved up.
pub(crate) struct Budget {
    rate: f64,
    tokens: f64,
    refilled: Instant,
}

impl Budget {
    /// `None` for an unlimited rate (0).
    pub(crate) fn new(bytes_per_sec: u64) -> Option<Arc<Mutex<Budget>>> {
        (bytes_per_sec > 0).then(|| {
            let rate = bytes_per_sec as f64;
            Arc::new(Mutex::new(Budget { rate, tokens: rate, refilled: Instant::now() }))
        })
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.rate);
        self.refilled = now;
    }

    /// Bytes that may be written now (at most `want`).
    fn available(&mut self, want: usize) -> usize {
        self.refill();
        want.min(self.tokens as usize)
    }

    fn spend(&mut self, bytes: usize) {
        self.tokens -= bytes as f64;
    }

    /// How long until a worthwhile write (10 ms worth of bytes, at most a chunk) may be made.
    fn wait(&mut self) -> Duration {
        self.refill();
        let target = (self.rate / 100.0).clamp(1.0, CHUNK as f64);
        Duration::from_secs_f64(((target - self.tokens) / self.rate).max(0.0))
    }
}

/// One of the guest's output streams.
#[derive(Clone)]
pub(crate) struct LogOutput {
    sink: Arc<dyn LogSink>,
    stream: Stream,
    budget: Option<Arc<Mutex<Budget>>>,
}

impl LogOutput {
    pub(crate) fn new(sink: Arc<dyn LogSink>, stream: Stream, budget: Option<Arc<Mutex<Budget>>>) -> Self {
        LogOutput { sink, stream, budget }
    }

    fn writer(&self) -> LogWriter {
        LogWriter { out: self.clone(), pause: None }
    }
}

impl IsTerminal for LogOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }
}

/// The stream objects WASI hands to the guest (p1 and p2 use `OutputStream`).
struct LogWriter {
    out: LogOutput,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl LogWriter {
    fn available(&self, want: usize) -> usize {
        let want = want.min(CHUNK);
        match &self.out.budget {
            Some(budget) => budget.lock().expect("budget lock").available(want),
            None => want,
        }
    }

    fn emit(&self, bytes: &[u8]) {
        if let Some(budget) = &self.out.budget {
            budget.lock().expect("budget lock").spend(bytes.len());
        }
        self.out.sink.write(self.out.stream, bytes);
    }

    fn wait(&self) -> Duration {
        self.out.budget.as_ref().map_or(Duration::ZERO, |b| b.lock().expect("budget lock").wait())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogWriter {
    async fn ready(&mut self) {
        if self.available(1) == 0 {
            tokio::time::sleep(self.wait()).await;
        }
    }
}

impl OutputStream for LogWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        // WASI callers write at most what `check_write` allowed; larger writes are still
        // passed on whole (in chunks) rather than failed.
        for chunk in bytes.chunks(CHUNK) {
            self.emit(chunk);
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(self.available(CHUNK))
    }
}

impl AsyncWrite for LogWriter {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        loop {
            if let Some(pause) = self.pause.as_mut() {
                std::task::ready!(pause.as_mut().poll(cx));
                self.pause = None;
            }
            let n = self.available(buf.len());
            if n > 0 || buf.is_empty() {
                self.emit(&buf[..n]);
                return Poll::Ready(Ok(n));
            }
            let wait = self.wait();
            self.pause = Some(Box::pin(tokio::time::sleep(wait)));
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_saves_up_at_most_one_second() {
        let budget = Budget::new(1000).unwrap();
        let mut budget = budget.lock().unwrap();
        assert_eq!(budget.available(5000), 1000);
        budget.spend(1000);
        assert_eq!(budget.available(5000), 0);
        let wait = budget.wait();
        assert!(wait > Duration::from_millis(5) && wait <= Duration::from_millis(10), "{wait:?}");
        assert!(Budget::new(0).is_none());
    }
}
