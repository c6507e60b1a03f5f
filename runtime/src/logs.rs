//! Container logs in the CRI format the kubelet uses (`<RFC3339Nano> <stream> <F|P> <text>`),
//! one file per container attempt, rotated by size; and reading them back for `kubectl logs`
//! (tail, since, timestamps, follow, previous).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wharf_shim::{LogSink, Stream};

/// A partial line is flushed (tagged `P`) once it grows past this.
const MAX_LINE: usize = 16 * 1024;

/// Writes one container attempt's output as CRI log lines, rotating at `max_size`.
pub struct LogWriter {
    path: PathBuf,
    max_size: u64,
    inner: Mutex<WriterState>,
}

struct WriterState {
    file: Option<File>,
    written: u64,
    pending: [Vec<u8>; 2],
}

fn timestamp() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%fZ").to_string()
}

impl LogWriter {
    pub fn create(path: PathBuf, max_size: u64) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            path,
            max_size,
            inner: Mutex::new(WriterState { file: Some(file), written, pending: [vec![], vec![]] }),
        })
    }

    fn emit(&self, state: &mut WriterState, stream: Stream, text: &[u8], full: bool) {
        let mut line = Vec::with_capacity(text.len() + 48);
        line.extend_from_slice(timestamp().as_bytes());
        line.push(b' ');
        line.extend_from_slice(stream.as_str().as_bytes());
        line.extend_from_slice(if full { b" F " } else { b" P " });
        line.extend_from_slice(text);
        line.push(b'\n');
        if state.written + line.len() as u64 > self.max_size && state.written > 0 {
            // Keep one rotated file, as the kubelet's default keeps a few.
            state.file = None;
            let _ = std::fs::rename(&self.path, self.path.with_extension("log.1"));
            state.file = OpenOptions::new().create(true).append(true).open(&self.path).ok();
            state.written = 0;
        }
        if let Some(file) = state.file.as_mut()
            && file.write_all(&line).is_ok()
        {
            state.written += line.len() as u64;
        }
    }

    /// Writes out any partial lines (when the container ends).
    pub fn flush(&self) {
        let mut state = self.inner.lock().expect("log lock");
        for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            let rest = std::mem::take(&mut state.pending[i]);
            if !rest.is_empty() {
                self.emit(&mut state, stream, &rest, true);
            }
        }
    }
}

impl LogSink for LogWriter {
    fn write(&self, stream: Stream, bytes: &[u8]) {
        let mut state = self.inner.lock().expect("log lock");
        let index = stream as usize;
        state.pending[index].extend_from_slice(bytes);
        loop {
            let pending = &state.pending[index];
            if let Some(newline) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = state.pending[index].drain(..=newline).collect();
                self.emit(&mut state, stream, &line[..line.len() - 1], true);
            } else if pending.len() >= MAX_LINE {
                let chunk: Vec<u8> = state.pending[index].drain(..MAX_LINE).collect();
                self.emit(&mut state, stream, &chunk, false);
            } else {
                break;
            }
        }
    }
}

/// What `kubectl logs` asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub tail_lines: Option<usize>,
    pub since: Option<jiff::Timestamp>,
    pub timestamps: bool,
    pub limit_bytes: Option<usize>,
}

/// One parsed CRI line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub time: String,
    pub text: String,
    pub full: bool,
}

pub fn parse_line(line: &str) -> Option<LogLine> {
    let mut parts = line.splitn(4, ' ');
    let time = parts.next()?.to_string();
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or("").to_string();
    Some(LogLine { time, text, full: tag != "P" })
}

impl LogQuery {
    /// Renders one line as `kubectl logs` shows it.
    pub fn render(&self, line: &LogLine) -> String {
        let end = if line.full { "\n" } else { "" };
        if self.timestamps { format!("{} {}{end}", line.time, line.text) } else { format!("{}{end}", line.text) }
    }

    fn keeps(&self, line: &LogLine) -> bool {
        match (&self.since, line.time.parse::<jiff::Timestamp>()) {
            (Some(since), Ok(time)) => time >= *since,
            _ => true,
        }
    }
}

/// Reads the lines of `path` (and its rotated predecessor) that `query` selects, returning the
/// rendered text and the file offset reached (for following).
pub fn read(path: &Path, query: &LogQuery) -> std::io::Result<(String, u64)> {
    let mut lines: Vec<LogLine> = Vec::new();
    let rotated = path.with_extension("log.1");
    for file in [rotated.as_path(), path] {
        if let Ok(f) = File::open(file) {
            lines.extend(BufReader::new(f).lines().map_while(Result::ok).filter_map(|l| parse_line(&l)));
        }
    }
    let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    lines.retain(|l| query.keeps(l));
    if let Some(n) = query.tail_lines {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let mut out: String = lines.iter().map(|l| query.render(l)).collect();
    if let Some(limit) = query.limit_bytes
        && out.len() > limit
    {
        let mut cut = limit;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    Ok((out, offset))
}

/// Reads complete lines appended to `path` after `offset`; returns the text and the new offset.
pub fn read_from(path: &Path, offset: u64, query: &LogQuery) -> std::io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = if len < offset { 0 } else { offset }; // rotated under us: start over
    file.seek(SeekFrom::Start(start))?;
    let mut reader = BufReader::new(file);
    let mut out = String::new();
    let mut reached = start;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        reached += n as u64;
        if let Some(parsed) = parse_line(line.trim_end_matches('\n')) {
            out.push_str(&query.render(&parsed));
        }
    }
    Ok((out, reached))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_becomes_cri_lines_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app/0.log");
        let writer = LogWriter::create(path.clone(), 1 << 20).unwrap();
        writer.write(Stream::Stdout, b"hello\nwor");
        writer.write(Stream::Stderr, b"oops\n");
        writer.write(Stream::Stdout, b"ld\n");
        writer.write(Stream::Stdout, b"no newline");
        writer.flush();
        let raw = std::fs::read_to_string(&path).unwrap();
        let first = parse_line(raw.lines().next().unwrap()).unwrap();
        assert_eq!((first.text.as_str(), first.full), ("hello", true));
        assert!(raw.lines().nth(1).unwrap().contains(" stderr F oops"));

        let (all, _) = read(&path, &LogQuery::default()).unwrap();
        assert_eq!(all, "hello\noops\nworld\nno newline\n");
        let (tail, _) = read(&path, &LogQuery { tail_lines: Some(2), ..Default::default() }).unwrap();
        assert_eq!(tail, "world\nno newline\n");
        let (stamped, _) =
            read(&path, &LogQuery { tail_lines: Some(1), timestamps: true, ..Default::default() }).unwrap();
        assert!(stamped.ends_with("Z no newline\n") && stamped.starts_with("20"), "{stamped}");
    }

    #[test]
    fn follow_reads_only_new_complete_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let writer = LogWriter::create(path.clone(), 1 << 20).unwrap();
        writer.write(Stream::Stdout, b"one\n");
        let (_, offset) = read(&path, &LogQuery::default()).unwrap();
        writer.write(Stream::Stdout, b"two\nthr");
        let (more, offset) = read_from(&path, offset, &LogQuery::default()).unwrap();
        assert_eq!(more, "two\n");
        writer.write(Stream::Stdout, b"ee\n");
        assert_eq!(read_from(&path, offset, &LogQuery::default()).unwrap().0, "three\n");
    }

    #[test]
    fn logs_rotate_by_size_and_keep_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let writer = LogWriter::create(path.clone(), 200).unwrap();
        for i in 0..20 {
            writer.write(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 200);
        assert!(path.with_extension("log.1").exists());
        let (text, _) = read(&path, &LogQuery { tail_lines: Some(1), ..Default::default() }).unwrap();
        assert_eq!(text, "line 19\n");
    }

    #[test]
    fn since_filters_old_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(
            &path,
            "2020-01-01T00:00:00.000000000Z stdout F old\n2030-01-01T00:00:00.000000000Z stdout F new\n",
        )
        .unwrap();
        let since = "2025-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(read(&path, &LogQuery { since: Some(since), ..Default::default() }).unwrap().0, "new\n");
    }

    #[test]
    fn long_lines_are_split_as_partial() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let writer = LogWriter::create(path.clone(), 1 << 22).unwrap();
        writer.write(Stream::Stdout, &vec![b'x'; MAX_LINE + 10]);
        writer.write(Stream::Stdout, b"\n");
        let raw = std::fs::read_to_string(&path).unwrap();
        assert!(raw.lines().next().unwrap().contains(" stdout P "));
        assert_eq!(read(&path, &LogQuery::default()).unwrap().0.len(), MAX_LINE + 10 + 1);
    }
}
