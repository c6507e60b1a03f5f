//! The server side of SPDY/3.1 as kubectl's port forwarding speaks it (client-go's httpstream
//! over moby/spdystream): frames, zlib-compressed header blocks with the SPDY/3 dictionary, and
//! a session that answers every stream kubectl opens and hands each forwarded connection (an
//! error stream and a data stream sharing a `requestID`) to a handler.
//!
//! ```text
//! control frame: 1 | version(15) | type(16) | flags(8) | length(24) | payload
//! data frame:    0 | stream id(31)          | flags(8) | length(24) | payload
//! header block:  count(32) then per pair: name length(32) name value length(32) value
//! ```
//!
//! spdystream does no flow control (it neither sends nor honours WINDOW_UPDATE), so neither does
//! this side: WINDOW_UPDATE and SETTINGS are read and ignored, PINGs are echoed.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;
/// RST_STREAM status: the stream was refused.
const REFUSED_STREAM: u32 = 3;
/// Longest frame payload accepted.
const MAX_FRAME: usize = 1 << 24;
/// Largest DATA payload sent in one frame.
pub const MAX_DATA: usize = 32 * 1024;
/// Frames waiting for the writer.
const OUTBOX: usize = 64;
/// DATA payloads waiting for a stream's reader.
const INBOX: usize = 16;

/// The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1): these
/// words, each preceded by its length as a 32-bit big-endian number, then the text in `TAIL`.
static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
        "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
        "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
        "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
        "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    );
    let mut dictionary = Vec::with_capacity(1424);
    for word in WORDS {
        dictionary.extend_from_slice(&(word.len() as u32).to_be_bytes());
        dictionary.extend_from_slice(word.as_bytes());
    }
    dictionary.extend_from_slice(TAIL.as_bytes());
    dictionary
});

/// A protocol violation; the session ends with a GOAWAY.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("SPDY: {0}")]
    Protocol(String),
    #[error("SPDY connection: {0}")]
    Io(#[from] std::io::Error),
}

fn protocol(message: impl Into<String>) -> SpdyError {
    SpdyError::Protocol(message.into())
}

/// One frame as read from the wire (header blocks still compressed).
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    Data { stream: u32, fin: bool, payload: Bytes },
    Control { kind: u16, flags: u8, payload: Bytes },
}

async fn read_frame(reader: &mut (impl AsyncRead + Unpin)) -> Result<Option<Frame>, SpdyError> {
    let mut head = [0u8; 8];
    match reader.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let flags = head[4];
    let length = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    if length >= MAX_FRAME {
        return Err(protocol(format!("frame of {length} bytes")));
    }
    let mut payload = vec![0u8; length];
    reader.read_exact(&mut payload).await?;
    let first = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    if first & 0x8000_0000 == 0 {
        return Ok(Some(Frame::Data { stream: first, fin: flags & FLAG_FIN != 0, payload: payload.into() }));
    }
    let version = ((first >> 16) & 0x7fff) as u16;
    if version != VERSION {
        return Err(protocol(format!("version {version}, only 3 is spoken")));
    }
    Ok(Some(Frame::Control { kind: first as u16, flags, payload: payload.into() }))
}

fn control_frame(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + payload.len());
    frame.extend_from_slice(&(0x8000u16 | VERSION).to_be_bytes());
    frame.extend_from_slice(&kind.to_be_bytes());
    frame.extend_from_slice(&(u32::from(flags) << 24 | payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn data_frame(stream: u32, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + payload.len());
    frame.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    let flags = if fin { FLAG_FIN } else { 0 };
    frame.extend_from_slice(&(u32::from(flags) << 24 | payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn u32_at(payload: &[u8], at: usize) -> Result<u32, SpdyError> {
    payload
        .get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| protocol("control frame too short"))
}

/// The zlib stream of one direction's header blocks: one per connection, each block ending at a
/// sync flush, both ends primed with the dictionary.
struct HeaderCodec {
    compress: Compress,
    decompress: Decompress,
}

impl HeaderCodec {
    fn new() -> Self {
        let mut compress = Compress::new(Compression::default(), true);
        compress.set_dictionary(&DICTIONARY).expect("a fresh zlib stream takes a dictionary");
        Self { compress, decompress: Decompress::new(true) }
    }

    fn encode(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut block = Vec::new();
        block.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (name, value) in headers {
            for part in [name.to_ascii_lowercase().as_bytes(), value.as_bytes()] {
                block.extend_from_slice(&(part.len() as u32).to_be_bytes());
                block.extend_from_slice(part);
            }
        }
        let mut out = Vec::with_capacity(block.len() + 64);
        let start = self.compress.total_in();
        loop {
            let consumed = (self.compress.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            self.compress
                .compress_vec(&block[consumed..], &mut out, FlushCompress::Sync)
                .expect("zlib compression of memory does not fail");
            let done = (self.compress.total_in() - start) as usize == block.len();
            // A sync flush is complete once a call leaves room in the output.
            if done && out.len() < out.capacity() {
                return out;
            }
        }
    }

    fn decode(&mut self, input: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
        let bad = |e: &dyn std::fmt::Display| protocol(format!("header block: {e}"));
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let start = self.decompress.total_in();
        loop {
            let consumed = (self.decompress.total_in() - start) as usize;
            if out.capacity() - out.len() < 256 {
                out.reserve(out.capacity().max(1024));
            }
            match self.decompress.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync) {
                Ok(Status::StreamEnd) => return Err(protocol("header stream ended")),
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.decompress.set_dictionary(&DICTIONARY).map_err(|e| bad(&e))?;
                }
                Err(e) => return Err(bad(&e)),
            }
            let consumed = (self.decompress.total_in() - start) as usize;
            if consumed == input.len() && out.len() < out.capacity() {
                break;
            }
        }
        parse_headers(&out)
    }
}

fn parse_headers(block: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
    let mut at = 0;
    let mut take = |len: usize| -> Result<&[u8], SpdyError> {
        let part = block.get(at..at + len).ok_or_else(|| protocol("header block truncated"))?;
        at += len;
        Ok(part)
    };
    let number = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let count = number(take(4)?);
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let len = number(take(4)?);
        let name = String::from_utf8_lossy(take(len)?).to_ascii_lowercase();
        let len = number(take(4)?);
        let value = String::from_utf8_lossy(take(len)?).into_owned();
        headers.push((name, value));
    }
    Ok(headers)
}

/// What the writer sends.
enum Out {
    Reply(u32),
    Data { stream: u32, fin: bool, payload: Bytes },
    Reset(u32, u32),
    Ping(Bytes),
    GoAway(u32),
}

async fn write_frames(mut writer: impl AsyncWrite + Unpin, mut outbox: mpsc::Receiver<Out>) {
    let mut codec = HeaderCodec::new();
    while let Some(out) = outbox.recv().await {
        let frame = match out {
            Out::Reply(stream) => {
                let mut payload = stream.to_be_bytes().to_vec();
                payload.extend(codec.encode(&[]));
                control_frame(SYN_REPLY, 0, &payload)
            }
            Out::Data { stream, fin, payload } => data_frame(stream, fin, &payload),
            Out::Reset(stream, status) => {
                let mut payload = stream.to_be_bytes().to_vec();
                payload.extend_from_slice(&status.to_be_bytes());
                control_frame(RST_STREAM, 0, &payload)
            }
            Out::Ping(id) => control_frame(PING, 0, &id),
            Out::GoAway(last) => {
                let mut payload = last.to_be_bytes().to_vec();
                payload.extend_from_slice(&0u32.to_be_bytes());
                control_frame(GOAWAY, 0, &payload)
            }
        };
        if writer.write_all(&frame).await.is_err() {
            return;
        }
        if outbox.is_empty() && writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// Sends on one stream of the session.
#[derive(Clone)]
struct StreamOut {
    stream: u32,
    outbox: mpsc::Sender<Out>,
}

impl StreamOut {
    async fn send(&self, payload: Bytes, fin: bool) -> bool {
        self.outbox.send(Out::Data { stream: self.stream, fin, payload }).await.is_ok()
    }
}

/// One forwarded connection kubectl opened: its port, what kubectl sends on the data stream,
/// and the way back.
pub struct Forward {
    pub port: u16,
    /// kubectl's bytes; `None` once it finished sending (or reset the stream).
    pub incoming: mpsc::Receiver<Bytes>,
    /// Cancelled when kubectl resets the data stream or the session ends.
    pub reset: CancellationToken,
    pub reply: Reply,
}

/// The way back to kubectl for one forwarded connection.
pub struct Reply {
    data: StreamOut,
    error: StreamOut,
    finished: bool,
    streams: Arc<Mutex<HashMap<u32, Inbound>>>,
}

impl Reply {
    /// Sends bytes to kubectl on the data stream; false once the session is gone.
    pub async fn send(&self, payload: Bytes) -> bool {
        for chunk in payload.chunks(MAX_DATA) {
            if !self.data.send(payload.slice_ref(chunk), false).await {
                return false;
            }
        }
        true
    }

    /// Ends the data stream towards kubectl (the pod closed its side).
    pub async fn finish(&mut self) {
        if !std::mem::replace(&mut self.finished, true) {
            self.data.send(Bytes::new(), true).await;
        }
    }

    /// Ends the forwarded connection: `error` (if any) on the error stream, which kubectl prints
    /// as "an error occurred forwarding L -> P: ERROR", then both streams closed.
    pub async fn close(mut self, error: Option<String>) {
        if let Some(message) = error {
            self.error.send(Bytes::from(message), false).await;
        }
        self.finish().await;
        self.error.send(Bytes::new(), true).await;
        let mut streams = self.streams.lock().expect("streams lock");
        streams.remove(&self.data.stream);
        streams.remove(&self.error.stream);
    }
}

/// A stream kubectl opened: where its DATA goes.
struct Inbound {
    incoming: Option<mpsc::Sender<Bytes>>,
    reset: CancellationToken,
}

/// The half of a forwarded connection seen first.
#[derive(Default)]
struct Pending {
    error: Option<u32>,
    data: Option<(u32, mpsc::Receiver<Bytes>, CancellationToken)>,
}

/// Serves one SPDY session until kubectl goes away: each forwarded connection is handed to
/// `forward` on its own task.
pub async fn serve<R, W, F, Fut>(mut reader: R, writer: W, forward: F)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
    F: Fn(Forward) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (outbox, rx) = mpsc::channel(OUTBOX);
    let writer = tokio::spawn(write_frames(writer, rx));
    let streams: Arc<Mutex<HashMap<u32, Inbound>>> = Arc::default();
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut codec = HeaderCodec::new();
    let mut last_stream = 0;
    let session = CancellationToken::new();
    let result: Result<(), SpdyError> = async {
        while let Some(frame) = read_frame(&mut reader).await? {
            match frame {
                Frame::Data { stream, fin, payload } => {
                    let sender = {
                        let mut streams = streams.lock().expect("streams lock");
                        let Some(inbound) = streams.get_mut(&stream) else { continue };
                        if fin { inbound.incoming.take() } else { inbound.incoming.clone() }
                    };
                    if let Some(sender) = sender.filter(|_| !payload.is_empty()) {
                        // A handler that stopped reading has nothing more to do with the bytes.
                        let _ = sender.send(payload).await;
                    }
                }
                Frame::Control { kind: SYN_STREAM, flags, payload } => {
                    let stream = u32_at(&payload, 0)? & 0x7fff_ffff;
                    let headers = codec.decode(payload.get(10..).ok_or_else(|| protocol("short SYN_STREAM"))?)?;
                    last_stream = stream;
                    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
                    let port = header("port").and_then(|p| p.parse::<u16>().ok()).filter(|p| *p > 0);
                    let (Some(kind), Some(port)) = (header("streamtype"), port) else {
                        outbox.send(Out::Reset(stream, REFUSED_STREAM)).await.ok();
                        continue;
                    };
                    // kubectl before 1.7 sent no request ID: one connection at a time then.
                    let request = header("requestid").unwrap_or("").to_string();
                    let (tx, rx) = mpsc::channel(INBOX);
                    let reset = session.child_token();
                    let inbound = Inbound { incoming: (flags & FLAG_FIN == 0).then_some(tx), reset: reset.clone() };
                    streams.lock().expect("streams lock").insert(stream, inbound);
                    outbox.send(Out::Reply(stream)).await.ok();
                    let entry = pending.entry(format!("{request}/{port}")).or_default();
                    match kind {
                        "error" => entry.error = Some(stream),
                        "data" => entry.data = Some((stream, rx, reset)),
                        _ => {
                            outbox.send(Out::Reset(stream, REFUSED_STREAM)).await.ok();
                            continue;
                        }
                    }
                    if entry.error.is_some() && entry.data.is_some() {
                        let Pending { error: Some(error), data: Some((data, incoming, reset)) } =
                            pending.remove(&format!("{request}/{port}")).expect("entry present")
                        else {
                            continue;
                        };
                        let out = |stream| StreamOut { stream, outbox: outbox.clone() };
                        let reply =
                            Reply { data: out(data), error: out(error), finished: false, streams: streams.clone() };
                        let forwarded = Forward { port, incoming, reset, reply };
                        tokio::spawn(forward(forwarded));
                    }
                }
                Frame::Control { kind: RST_STREAM, payload, .. } => {
                    let stream = u32_at(&payload, 0)? & 0x7fff_ffff;
                    if let Some(inbound) = streams.lock().expect("streams lock").remove(&stream) {
                        inbound.reset.cancel();
                    }
                }
                Frame::Control { kind: PING, payload, .. } => {
                    outbox.send(Out::Ping(payload)).await.ok();
                }
                Frame::Control { kind: GOAWAY, .. } => break,
                // SETTINGS, HEADERS, WINDOW_UPDATE and anything newer: nothing to do.
                Frame::Control { .. } => {}
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "port-forward session ends");
        outbox.send(Out::GoAway(last_stream)).await.ok();
    }
    // Every handler stops; the writer ends once their last frames are out.
    session.cancel();
    drop(outbox);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert!(DICTIONARY.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(DICTIONARY.ends_with(b"utf-,*,enq=0."));
    }

    #[test]
    fn header_blocks_round_trip_through_one_zlib_stream() {
        let (mut client, mut server) = (HeaderCodec::new(), HeaderCodec::new());
        let first = client.encode(&[("streamType", "error"), ("port", "80"), ("requestID", "0")]);
        let second = client.encode(&[("streamType", "data"), ("port", "80"), ("requestID", "0")]);
        let empty = client.encode(&[]);
        let owned = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
        };
        assert_eq!(
            server.decode(&first).unwrap(),
            owned(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")])
        );
        assert_eq!(
            server.decode(&second).unwrap(),
            owned(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")])
        );
        assert_eq!(server.decode(&empty).unwrap(), vec![]);
    }

    #[tokio::test]
    async fn frames_are_read_as_written() {
        let mut bytes = control_frame(PING, 0, &7u32.to_be_bytes());
        bytes.extend(data_frame(3, true, b"hello"));
        let mut reader = &bytes[..];
        assert_eq!(
            read_frame(&mut reader).await.unwrap(),
            Some(Frame::Control { kind: PING, flags: 0, payload: Bytes::from_static(&[0, 0, 0, 7]) })
        );
        assert_eq!(
            read_frame(&mut reader).await.unwrap(),
            Some(Frame::Data { stream: 3, fin: true, payload: Bytes::from_static(b"hello") })
        );
        assert_eq!(read_frame(&mut reader).await.unwrap(), None);
    }

    /// A client opening the two streams of a connection, sending a line and closing: the handler
    /// sees the port and the bytes, and its answer comes back on the data stream.
    #[tokio::test]
    async fn a_forwarded_connection_reaches_its_handler_and_back() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (server_read, server_write) = tokio::io::split(server);
        let served = tokio::spawn(serve(server_read, server_write, |mut forward: Forward| async move {
            let mut got = Vec::new();
            while let Some(bytes) = forward.incoming.recv().await {
                got.extend_from_slice(&bytes);
            }
            forward.reply.send(Bytes::from(format!("{}:{}", forward.port, String::from_utf8_lossy(&got)))).await;
            forward.reply.close(None).await;
        }));
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let mut codec = HeaderCodec::new();
        for (stream, kind) in [(1u32, "error"), (3, "data")] {
            let mut payload = stream.to_be_bytes().to_vec();
            payload.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            payload.extend(codec.encode(&[("streamType", kind), ("port", "8080"), ("requestID", "0")]));
            client_write.write_all(&control_frame(SYN_STREAM, 0, &payload)).await.unwrap();
        }
        client_write.write_all(&data_frame(1, true, b"")).await.unwrap();
        client_write.write_all(&data_frame(3, false, b"ping")).await.unwrap();
        client_write.write_all(&data_frame(3, true, b"")).await.unwrap();
        let mut replies = 0;
        let mut data = Vec::new();
        let mut closed = Vec::new();
        while closed.len() < 2 {
            match read_frame(&mut client_read).await.unwrap().unwrap() {
                Frame::Control { kind: SYN_REPLY, payload, .. } => {
                    assert!(codec.decode(&payload[4..]).unwrap().is_empty());
                    replies += 1;
                }
                Frame::Data { stream: 3, fin, payload } => {
                    data.extend_from_slice(&payload);
                    if fin {
                        closed.push(3);
                    }
                }
                Frame::Data { stream: 1, fin: true, payload } if payload.is_empty() => closed.push(1),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(replies, 2);
        assert_eq!(data, b"8080:ping");
        client_write.write_all(&control_frame(GOAWAY, 0, &[0; 8])).await.unwrap();
        served.await.unwrap();
    }

    /// kubectl's keep-alive pings are echoed; its reset of a data stream stops the handler, which
    /// then closes the error stream; streams without a port are refused.
    #[tokio::test]
    async fn pings_are_echoed_and_resets_stop_the_handler() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (server_read, server_write) = tokio::io::split(server);
        let served = tokio::spawn(serve(server_read, server_write, |forward: Forward| async move {
            forward.reset.cancelled().await;
            forward.reply.close(Some("stopped".into())).await;
        }));
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let mut codec = HeaderCodec::new();
        client_write.write_all(&control_frame(PING, 0, &1u32.to_be_bytes())).await.unwrap();
        let pong = read_frame(&mut client_read).await.unwrap().unwrap();
        assert_eq!(pong, Frame::Control { kind: PING, flags: 0, payload: Bytes::from_static(&[0, 0, 0, 1]) });
        let mut open = |stream: u32, headers: &[(&str, &str)]| {
            let mut payload = stream.to_be_bytes().to_vec();
            payload.extend_from_slice(&[0; 6]);
            payload.extend(codec.encode(headers));
            control_frame(SYN_STREAM, 0, &payload)
        };
        let refused = open(1, &[("streamType", "data")]);
        let error = open(3, &[("streamType", "error"), ("port", "80"), ("requestID", "7")]);
        let data = open(5, &[("streamType", "data"), ("port", "80"), ("requestID", "7")]);
        for frame in [refused, error, data] {
            client_write.write_all(&frame).await.unwrap();
        }
        // Stream 5, status CANCEL.
        let mut reset = 5u32.to_be_bytes().to_vec();
        reset.extend_from_slice(&5u32.to_be_bytes());
        client_write.write_all(&control_frame(RST_STREAM, 0, &reset)).await.unwrap();
        let mut seen = Vec::new();
        loop {
            match read_frame(&mut client_read).await.unwrap().unwrap() {
                Frame::Control { kind: RST_STREAM, payload, .. } => seen.push(format!("reset {}", payload[3])),
                Frame::Control { kind: SYN_REPLY, payload, .. } => seen.push(format!("reply {}", payload[3])),
                Frame::Data { stream, fin, payload } => {
                    seen.push(format!("data {stream} {fin} {}", String::from_utf8_lossy(&payload)));
                    if stream == 3 && fin {
                        break;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seen, ["reset 1", "reply 3", "reply 5", "data 3 false stopped", "data 5 true ", "data 3 true "]);
        // kubectl going away ends the session.
        drop((client_read, client_write));
        served.await.unwrap();
    }
}
