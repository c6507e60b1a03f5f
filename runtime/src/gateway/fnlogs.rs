//! What Wasm functions write to stdout and stderr, kept per function on the node: one file
//! `<data dir>/functions/<namespace>/<name>.log` of lines `RFC3339 stdout|stderr TEXT`, whole
//! lines only (a request's partial line waits for its newline or the request's end), kept open
//! while the function is routed. A file past [`MAX_BYTES`] starts over. The gateway serves it
//! to `wharf fn logs` (see `super`).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wharf_shim::{LogSink, Stream};

/// Size at which a function's log file is truncated.
pub const MAX_BYTES: u64 = 8 << 20;

/// The node's function logs.
pub struct FunctionLogs {
    dir: PathBuf,
    /// Open files by path, shared by the requests of each function.
    open: Mutex<HashMap<PathBuf, Arc<LogFile>>>,
}

impl FunctionLogs {
    pub fn new(dir: PathBuf) -> Self {
        FunctionLogs { dir, open: Mutex::default() }
    }

    /// The log file of `namespace/name` (names are DNS labels, safe in paths).
    pub fn path(&self, namespace: &str, name: &str) -> Option<PathBuf> {
        let safe = |s: &str| {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') && s != ".."
        };
        (safe(namespace) && safe(name)).then(|| self.dir.join(namespace).join(format!("{name}.log")))
    }

    /// Closes the function's file (its route went away); the file stays for `wharf fn logs`.
    pub fn forget(&self, namespace: &str, name: &str) {
        if let Some(path) = self.path(namespace, name) {
            self.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&path);
        }
    }

    /// A sink for one request's output.
    pub fn request(&self, namespace: &str, name: &str) -> Arc<dyn LogSink> {
        let file = self.path(namespace, name).map(|path| {
            self.open
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(path.clone())
                .or_insert_with(|| Arc::new(LogFile { path, file: Mutex::default() }))
                .clone()
        });
        Arc::new(RequestLog { file, pending: Mutex::default() })
    }
}

/// One function's log file, opened on its first write and kept open.
struct LogFile {
    path: PathBuf,
    file: Mutex<Option<(std::fs::File, u64)>>,
}

impl LogFile {
    fn write(&self, text: &[u8]) -> std::io::Result<()> {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
            let len = file.metadata()?.len();
            *guard = Some((file, len));
        }
        let (file, len) = guard.as_mut().expect("opened above");
        if *len > MAX_BYTES {
            // Appends go to the new end, so the file starts over.
            file.set_len(0)?;
            *len = 0;
        }
        file.write_all(text)?;
        *len += text.len() as u64;
        Ok(())
    }
}

struct RequestLog {
    file: Option<Arc<LogFile>>,
    /// Bytes of an unfinished line per stream.
    pending: Mutex<[Vec<u8>; 2]>,
}

fn index(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

impl RequestLog {
    fn append(&self, stream: Stream, lines: &[u8]) {
        let Some(file) = &self.file else { return };
        let now = jiff::Timestamp::now();
        let mut text = Vec::with_capacity(lines.len() + 48);
        for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let _ = write!(text, "{now} {} ", stream.as_str());
            text.extend_from_slice(line);
            text.push(b'\n');
        }
        if let Err(e) = file.write(&text) {
            tracing::debug!(path = %file.path.display(), error = %e, "cannot write function log");
        }
    }
}

impl LogSink for RequestLog {
    fn write(&self, stream: Stream, bytes: &[u8]) {
        let whole = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let buffer = &mut pending[index(stream)];
            buffer.extend_from_slice(bytes);
            match buffer.iter().rposition(|&b| b == b'\n') {
                Some(end) => {
                    let rest = buffer.split_off(end + 1);
                    std::mem::replace(buffer, rest)
                }
                None => return,
            }
        };
        self.append(stream, &whole);
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        for (i, rest) in pending.iter().enumerate() {
            if !rest.is_empty() {
                self.append(if i == 0 { Stream::Stdout } else { Stream::Stderr }, rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_lines_with_time_and_stream() {
        let dir = tempfile::tempdir().unwrap();
        let logs = FunctionLogs::new(dir.path().to_path_buf());
        assert!(logs.path("default", "../x").is_none());
        let sink = logs.request("default", "hello");
        sink.write(Stream::Stderr, b"GET /hel");
        sink.write(Stream::Stderr, b"lo\npartial");
        drop(sink);
        let text = std::fs::read_to_string(logs.path("default", "hello").unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with(" stderr GET /hello"), "{text}");
        assert!(lines[1].ends_with(" stderr partial"), "{text}");
    }
}
