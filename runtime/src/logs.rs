//! Container logs in the CRI format the kubelet uses (`<RFC3339Nano> <stream> <F|P> <text>`),
//! one file per container attempt, rotated by size as the kubelet's `containerLogMaxSize` ×
//! `containerLogMaxFiles` (10Mi × 5 by default): a container that floods its output holds at most
//! that much disk; and reading them back for `kubectl logs` (tail, since, timestamps, follow,
//! previous).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wharf_shim::{LogSink, Stream};

/// A partial line is flushed (tagged `P`) once it grows past this.
const MAX_LINE: usize = 16 * 1024;
/// Files kept per container attempt, the live one included (the kubelet's
/// `containerLogMaxFiles` default): `N.log`, then `N.log.1` (newest rotated) to `N.log.4`.
pub const MAX_FILES: usize = 5;

/// The `index`th file of the log at `path`: 0 the live one, then the rotated ones, newest first.
fn rotated(path: &Path, index: usize) -> PathBuf {
    if index == 0 { path.to_path_buf() } else { path.with_extension(format!("log.{index}")) }
}

/// Shifts every rotated file one place older (dropping the oldest) and the live one to `.1`.
fn rotate(path: &Path) {
    let _ = std::fs::remove_file(rotated(path, MAX_FILES - 1));
    for index in (0..MAX_FILES - 1).rev() {
        let _ = std::fs::rename(rotated(path, index), rotated(path, index + 1));
    }
}

/// Writes one container attempt's output as CRI log lines, rotating at `max_size`. The lines of
/// one `write` share its timestamp and reach the file in one system call.
pub struct LogWriter {
    path: PathBuf,
    max_size: u64,
    inner: Mutex<WriterState>,
}

struct WriterState {
    file: Option<File>,
    written: u64,
    pending: [Vec<u8>; 2],
    /// Lines formatted but not yet written.
    batch: Vec<u8>,
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
            inner: Mutex::new(WriterState { file: Some(file), written, pending: [vec![], vec![]], batch: vec![] }),
        })
    }

    /// Adds one line to the batch, first writing the batch out and rotating if the line would
    /// take the file past `max_size`.
    fn emit(&self, state: &mut WriterState, time: &str, stream: Stream, text: &[u8], full: bool) {
        let stream = stream.as_str().as_bytes();
        let size = (time.len() + 1 + stream.len() + 3 + text.len() + 1) as u64;
        let held = state.written + state.batch.len() as u64;
        if held + size > self.max_size && held > 0 {
            Self::write_out(state);
            state.file = None;
            rotate(&self.path);
            state.file = OpenOptions::new().create(true).append(true).open(&self.path).ok();
            state.written = 0;
        }
        let line = &mut state.batch;
        line.extend_from_slice(time.as_bytes());
        line.push(b' ');
        line.extend_from_slice(stream);
        line.extend_from_slice(if full { b" F " } else { b" P " });
        line.extend_from_slice(text);
        line.push(b'\n');
    }

    /// Writes the batch to the file.
    fn write_out(state: &mut WriterState) {
        if let Some(file) = state.file.as_mut()
            && !state.batch.is_empty()
            && file.write_all(&state.batch).is_ok()
        {
            state.written += state.batch.len() as u64;
        }
        state.batch.clear();
    }

    /// Writes out any partial lines (when the container ends).
    pub fn flush(&self) {
        let mut state = self.inner.lock().expect("log lock");
        let time = timestamp();
        for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            let rest = std::mem::take(&mut state.pending[i]);
            if !rest.is_empty() {
                self.emit(&mut state, &time, stream, &rest, true);
            }
        }
        Self::write_out(&mut state);
    }
}

impl LogSink for LogWriter {
    fn write(&self, stream: Stream, bytes: &[u8]) {
        let mut state = self.inner.lock().expect("log lock");
        let index = stream as usize;
        let mut pending = std::mem::take(&mut state.pending[index]);
        pending.extend_from_slice(bytes);
        let time = timestamp();
        // Complete lines, and partial ones of MAX_LINE bytes, from the front of `pending`.
        let mut at = 0;
        loop {
            let rest = &pending[at..];
            if let Some(newline) = rest.iter().take(MAX_LINE + 1).position(|b| *b == b'\n') {
                self.emit(&mut state, &time, stream, &rest[..newline], true);
                at += newline + 1;
            } else if rest.len() >= MAX_LINE {
                self.emit(&mut state, &time, stream, &rest[..MAX_LINE], false);
                at += MAX_LINE;
            } else {
                break;
            }
        }
        pending.drain(..at);
        state.pending[index] = pending;
        Self::write_out(&mut state);
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

/// Reads the lines of `path` (and its rotated predecessors) that `query` selects, returning the
/// rendered text and the file offset reached (for following). With `tail_lines` (and no
/// `since`), files are read from their end and older files only while the newer ones hold too
/// few lines, so a tail costs the same however large the log.
pub fn read(path: &Path, query: &LogQuery) -> std::io::Result<(String, u64)> {
    let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    // Newest file first; each file's lines in order.
    let mut files: Vec<Vec<LogLine>> = Vec::new();
    let mut kept = 0;
    for index in 0..MAX_FILES {
        let file = rotated(path, index);
        let lines: Vec<LogLine> = match (query.tail_lines, query.since) {
            (Some(n), None) if kept >= n => break,
            (Some(n), None) => match last_lines(&file, n - kept) {
                Ok(lines) => lines.iter().filter_map(|l| parse_line(l)).collect(),
                Err(_) => continue,
            },
            _ => {
                let Ok(text) = std::fs::read(&file) else { continue };
                let text = String::from_utf8_lossy(complete_lines(&text));
                text.lines().filter_map(parse_line).filter(|l| query.keeps(l)).collect()
            }
        };
        kept += lines.len();
        files.push(lines);
    }
    let mut lines: Vec<LogLine> = files.into_iter().rev().flatten().collect();
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

/// `bytes` up to its last newline: a line without one is still being written (a reader may see
/// part of a large write), so it is left for the next read.
fn complete_lines(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)]
}

/// The last `n` lines of the file at `path` (all of them if it has fewer), read from its end.
fn last_lines(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    const BLOCK: u64 = 64 << 10;
    let mut file = File::open(path)?;
    let mut start = file.metadata()?.len();
    // Blocks read backwards, joined once at the end.
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    // A final newline ends the last line; more than `n` newlines before it mean `n` whole lines.
    let mut newlines = 0;
    while start > 0 && newlines <= n {
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut block)?;
        newlines += block.iter().filter(|b| **b == b'\n').count();
        blocks.push(block);
        start = from;
    }
    blocks.reverse();
    let tail = blocks.concat();
    let text = String::from_utf8_lossy(complete_lines(&tail));
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 {
        // The first line read is cut.
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(n);
    Ok(lines[skip..].iter().map(|l| l.to_string()).collect())
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
    fn a_flood_keeps_at_most_max_files_and_tails_across_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let writer = LogWriter::create(path.clone(), 1000).unwrap();
        for i in 0..2000 {
            writer.write(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, MAX_FILES);
        let total: u64 = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
        assert!(total <= 1000 * MAX_FILES as u64, "{total} bytes kept");
        // More lines than the live file holds: the tail reaches into the rotated ones, in order.
        let (text, _) = read(&path, &LogQuery { tail_lines: Some(40), ..Default::default() }).unwrap();
        let expected: String = (1960..2000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);
        let (all, _) = read(&path, &LogQuery::default()).unwrap();
        assert!(all.ends_with("line 1999\n") && all.lines().count() < 2000, "{}", all.lines().count());
    }

    #[test]
    fn tails_read_from_the_end_of_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let body: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &body).unwrap();
        assert_eq!(last_lines(&path, 2).unwrap(), ["line 49998", "line 49999"]);
        assert_eq!(last_lines(&path, 100_000).unwrap().len(), 50_000);
        assert_eq!(last_lines(&path, 0).unwrap(), Vec::<String>::new());
        // "b" is still being written.
        std::fs::write(&path, "a\nb").unwrap();
        assert_eq!(last_lines(&path, 1).unwrap(), ["a"]);
        assert_eq!(last_lines(&path, 5).unwrap(), ["a"]);
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
    fn a_line_still_being_written_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, "2026-01-01T00:00:00.0Z stdout F one\n2026-01-01T00:00:00.0Z stdout F tw").unwrap();
        let tail = LogQuery { tail_lines: Some(3), ..LogQuery::default() };
        assert_eq!(read(&path, &tail).unwrap().0, "one\n");
        assert_eq!(read(&path, &LogQuery::default()).unwrap().0, "one\n");
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
