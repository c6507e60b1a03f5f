//! `kubectl exec` on the agent: the running containers by pod and name, and the remote-command
//! WebSocket protocol spoken on top of `Container::exec`.
//!
//! Every message is binary and starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the final
//! `Status` (JSON), 4 terminal size (JSON `{"Width":..,"Height":..}`). `v5.channel.k8s.io` adds
//! `[255, channel]`, with which the client closes a channel (stdin's end of file, which
//! `kubectl cp` relies on); `v4.channel.k8s.io` is the same without it.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::stream::SplitStream;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use wharf_shim::{Container, ExecSpec, ShimError};

/// The subprotocols served, preferred first.
pub const PROTOCOLS: [&str; 2] = [V5, "v4.channel.k8s.io"];
const V5: &str = "v5.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// How long output may stay open after the command exited (a background process holding it).
const LINGER: Duration = Duration::from_secs(2);
/// How long the client has to answer the close frame once it has everything.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// A pod's running containers by name.
type PodContainers = BTreeMap<String, Arc<dyn Container>>;

/// The containers running on this node, by (namespace, pod) and container name.
#[derive(Default)]
pub struct RunningContainers {
    pods: Mutex<HashMap<(String, String), PodContainers>>,
}

impl RunningContainers {
    pub fn insert(&self, namespace: &str, pod: &str, name: &str, container: Arc<dyn Container>) {
        let mut pods = self.pods.lock().expect("running containers lock");
        pods.entry((namespace.into(), pod.into())).or_default().insert(name.into(), container);
    }

    /// Forgets the container `id` if it is still the one known by this name (a newer attempt or a
    /// new pod of the same name may have replaced it).
    pub fn remove(&self, namespace: &str, pod: &str, name: &str, id: &str) {
        let mut pods = self.pods.lock().expect("running containers lock");
        let key = (namespace.to_string(), pod.to_string());
        if let Some(containers) = pods.get_mut(&key) {
            if containers.get(name).is_some_and(|c| c.id() == id) {
                containers.remove(name);
            }
            if containers.is_empty() {
                pods.remove(&key);
            }
        }
    }

    /// Every running container as (namespace, pod, container name, container).
    pub fn all(&self) -> Vec<(String, String, String, Arc<dyn Container>)> {
        let pods = self.pods.lock().expect("running containers lock");
        pods.iter()
            .flat_map(|((namespace, pod), containers)| {
                containers.iter().map(move |(name, c)| (namespace.clone(), pod.clone(), name.clone(), c.clone()))
            })
            .collect()
    }

    /// The running container, or the kubelet's message when it is not running.
    pub fn get(&self, namespace: &str, pod: &str, name: &str) -> Result<Arc<dyn Container>, String> {
        let pods = self.pods.lock().expect("running containers lock");
        pods.get(&(namespace.into(), pod.into()))
            .and_then(|containers| containers.get(name))
            .cloned()
            .ok_or_else(|| format!("container not found ({name:?})"))
    }
}

/// What the client asked to run, from the query (`command` repeats; flags as `true` or `1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    pub fn from_query(pairs: &[(String, String)]) -> Result<Self, String> {
        let flag = |key: &str| -> Result<bool, String> {
            match pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str()) {
                None | Some("" | "0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
                Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
                Some(other) => Err(format!("invalid value for {key}: {other:?}")),
            }
        };
        let command: Vec<String> = pairs.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
        let tty = flag("tty")?;
        let options = Self {
            command,
            stdin: flag("stdin")?,
            stdout: flag("stdout")?,
            // A terminal carries stderr on stdout, as the kubelet does.
            stderr: flag("stderr")? && !tty,
            tty,
        };
        if options.command.is_empty() {
            return Err("you must specify at least one command for the container".into());
        }
        if !(options.stdin || options.stdout || options.stderr) {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        Ok(options)
    }
}

/// A data message on `channel`.
pub fn frame(channel: u8, data: &[u8]) -> Bytes {
    let mut message = Vec::with_capacity(data.len() + 1);
    message.push(channel);
    message.extend_from_slice(data);
    message.into()
}

/// The error-channel `Status` for a command that exited with `code`: client-go turns a
/// `NonZeroExitCode` into its exit code.
pub fn exit_status(code: i32, command: &[String]) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.clamp(1, 255).to_string()}]},
    })
}

/// The error-channel `Status` for a command that could not run.
fn failure_status(error: &ShimError, container: &str) -> Value {
    let (reason, code, message) = match error {
        ShimError::Unsupported(m) => ("BadRequest", 400, format!("cannot exec in container {container:?}: {m}")),
        other => ("InternalError", 500, format!("error executing command in container: {other}")),
    };
    json!({"metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code})
}

/// A `Status` answer before the upgrade, as kube-apiserver and the kubelet give them.
pub fn rejection(code: StatusCode, message: impl Into<String>) -> Response {
    let reason = match code {
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::UNAUTHORIZED => "Unauthorized",
        _ => "BadRequest",
    };
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message.into(),
        "reason": reason,
        "code": code.as_u16(),
    });
    (code, axum::Json(status)).into_response()
}

/// A terminal size as client-go sends it.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
struct TerminalSize {
    width: u16,
    height: u16,
}

/// Resize messages carry one or more JSON sizes, possibly split across messages: complete ones
/// are taken from `pending`, the rest stays for the next message.
fn take_sizes(pending: &mut Vec<u8>) -> Vec<TerminalSize> {
    let mut sizes = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(pending).into_iter::<TerminalSize>();
    let mut consumed = 0;
    loop {
        match stream.next() {
            Some(Ok(size)) => {
                sizes.push(size);
                consumed = stream.byte_offset();
            }
            Some(Err(e)) if e.is_eof() => break,
            // The rest is whitespace, or cannot be a size.
            Some(Err(_)) | None => {
                consumed = pending.len();
                break;
            }
        }
    }
    pending.drain(..consumed);
    sizes
}

/// Feeds the command's stdin from a thread of its own: the shim's files are blocking, and may
/// share their open file description with the shim (a terminal master), so their flags stay
/// as they are. Dropping the sender closes stdin once what was sent is written.
fn stdin_writer(mut file: File) -> std::io::Result<mpsc::Sender<Bytes>> {
    let (sender, mut data) = mpsc::channel::<Bytes>(4);
    std::thread::Builder::new().name("exec-stdin".into()).spawn(move || {
        while let Some(chunk) = data.blocking_recv() {
            if file.write_all(&chunk).is_err() {
                return;
            }
        }
    })?;
    Ok(sender)
}

/// Reads one of the command's outputs on a thread of its own until end of file. The thread
/// ends at end of file or once nobody takes its chunks (after its next read returns).
fn output_reader(mut file: File) -> std::io::Result<mpsc::Receiver<Vec<u8>>> {
    let (chunks, receiver) = mpsc::channel::<Vec<u8>>(4);
    std::thread::Builder::new().name("exec-output".into()).spawn(move || {
        let mut buffer = vec![0u8; 32 * 1024];
        loop {
            match file.read(&mut buffer) {
                Ok(0) => return,
                Ok(n) => {
                    if chunks.blocking_send(buffer[..n].to_vec()).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    })?;
    Ok(receiver)
}

/// Runs one exec session on an upgraded connection: starts the command, copies the channels
/// until it exits and its output is read, sends the final `Status` and closes the connection.
pub async fn serve(socket: WebSocket, container: Arc<dyn Container>, name: String, options: ExecOptions) {
    let half_close = socket.protocol().is_some_and(|p| p == V5);
    let (mut sink, source) = socket.split();
    let (out, mut outgoing) = mpsc::channel::<Message>(16);
    let sending = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
    });
    let spec = ExecSpec {
        args: options.command.clone(),
        tty: options.tty,
        stdin: options.stdin,
        stdout: options.stdout,
        stderr: options.stderr,
    };
    let started = container.exec(spec).await.and_then(|process| {
        let stdin = process.stdin.map(stdin_writer).transpose();
        let stdout = process.stdout.map(output_reader).transpose();
        let stderr = process.stderr.map(output_reader).transpose();
        match (stdin, stdout, stderr) {
            (Ok(stdin), Ok(stdout), Ok(stderr)) => Ok((stdin, stdout, stderr, process.resize, process.exit)),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(ShimError::Runtime(format!("exec streams: {e}"))),
        }
    });
    let (status, input) = match started {
        Err(e) => (failure_status(&e, &name), tokio::spawn(read_input(source, None, None, half_close))),
        Ok((stdin, stdout, stderr, resize, exit)) => {
            let input = tokio::spawn(read_input(source, stdin, Some(resize), half_close));
            let (exited, exit_seen) = watch::channel(false);
            let copies: Vec<_> = [(STDOUT, stdout), (STDERR, stderr)]
                .into_iter()
                .filter_map(|(channel, chunks)| Some(copy_output(channel, chunks?, out.clone(), exit_seen.clone())))
                .collect();
            let (code, _) = tokio::join!(
                async {
                    let code = exit.await;
                    let _ = exited.send(true);
                    code
                },
                futures::future::join_all(copies),
            );
            (exit_status(code, &options.command), input)
        }
    };
    let _ = out.send(Message::Binary(frame(ERROR, status.to_string().as_bytes()))).await;
    let _ = out.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
    drop(out);
    let _ = sending.await;
    // Reading on lets the client's answer to the close frame arrive; it answers once it has read
    // everything.
    let abort = input.abort_handle();
    if tokio::time::timeout(CLOSE_WAIT, input).await.is_err() {
        abort.abort();
    }
}

/// Copies one output of the command to its channel until end of file, or until it has been
/// quiet for `LINGER` after the command exited.
async fn copy_output(
    channel: u8,
    mut chunks: mpsc::Receiver<Vec<u8>>,
    out: mpsc::Sender<Message>,
    mut exited: watch::Receiver<bool>,
) {
    loop {
        let chunk = if *exited.borrow() {
            match tokio::time::timeout(LINGER, chunks.recv()).await {
                Ok(chunk) => chunk,
                Err(_) => return,
            }
        } else {
            tokio::select! {
                chunk = chunks.recv() => chunk,
                _ = exited.changed() => continue,
            }
        };
        let Some(chunk) = chunk else { return };
        if out.send(Message::Binary(frame(channel, &chunk))).await.is_err() {
            return;
        }
    }
}

/// Reads the client's messages until it closes: stdin data, stdin's close, terminal sizes.
async fn read_input(
    mut source: SplitStream<WebSocket>,
    mut stdin: Option<mpsc::Sender<Bytes>>,
    resize: Option<Box<dyn Fn(u16, u16) + Send + Sync>>,
    half_close: bool,
) {
    let mut sizes = Vec::new();
    // The stream ends after the closing handshake, whichever side began it.
    while let Some(Ok(message)) = source.next().await {
        let Message::Binary(data) = message else { continue };
        match (data.first().copied(), data.get(1).copied()) {
            (Some(STDIN), _) => {
                if let Some(writer) = &stdin
                    && writer.send(data.slice(1..)).await.is_err()
                {
                    // The command closed its stdin or ended; what else the client sends is dropped.
                    stdin = None;
                }
            }
            (Some(RESIZE), _) => {
                sizes.extend_from_slice(&data[1..]);
                for size in take_sizes(&mut sizes) {
                    if let Some(resize) = &resize {
                        resize(size.width, size.height);
                    }
                }
            }
            (Some(CLOSE), Some(STDIN)) if half_close => stdin = None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::os::fd::OwnedFd;
    use std::process::{Command, Stdio};

    use tokio::net::TcpStream;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::{self, ClientRequestBuilder, Message as WsMessage};
    use wharf_shim::{BoxFuture, ExecProcess, Exit, Stats};

    use super::*;
    use crate::worker::LogIndex;

    /// Runs exec'd commands as host processes: what a Linux shim does, without a container.
    struct HostProcesses {
        id: String,
        seen: Arc<Mutex<Seen>>,
    }

    /// What the agent did with the processes' streams.
    #[derive(Default)]
    struct Seen {
        resizes: Vec<(u16, u16)>,
        /// Copies of the output files handed to the agent.
        files: Vec<File>,
    }

    impl Container for HostProcesses {
        fn id(&self) -> &str {
            &self.id
        }
        fn wait(&self) -> BoxFuture<'_, Exit> {
            Box::pin(std::future::pending())
        }
        fn stop(&self, _: Duration) -> BoxFuture<'_, Exit> {
            Box::pin(async { Exit::Code(0) })
        }
        fn stats(&self) -> Stats {
            Stats::default()
        }
        fn exec(&self, spec: ExecSpec) -> BoxFuture<'_, Result<ExecProcess, ShimError>> {
            let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
            let spawned = Command::new(&spec.args[0])
                .args(&spec.args[1..])
                .stdin(piped(spec.stdin))
                .stdout(piped(spec.stdout))
                .stderr(piped(spec.stderr))
                .spawn();
            let seen = self.seen.clone();
            Box::pin(async move {
                let mut child = spawned.map_err(|e| ShimError::Runtime(e.to_string()))?;
                // Copies of the outputs stay here, as a shim may keep them (a copy of stdin would
                // hold it open).
                let keep = |file: File| {
                    seen.lock().unwrap().files.push(file.try_clone().unwrap());
                    file
                };
                let stdin = child.stdin.take().map(|p| File::from(OwnedFd::from(p)));
                let stdout = child.stdout.take().map(|p| keep(File::from(OwnedFd::from(p))));
                let stderr = child.stderr.take().map(|p| keep(File::from(OwnedFd::from(p))));
                Ok(ExecProcess {
                    stdin,
                    stdout,
                    stderr,
                    resize: Box::new(move |columns, rows| seen.lock().unwrap().resizes.push((columns, rows))),
                    exit: Box::pin(async move {
                        let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
                        status.code().unwrap_or(-1)
                    }),
                })
            })
        }
    }

    /// A container whose runtime cannot exec (as Wasm containers).
    struct NoExec;

    impl Container for NoExec {
        fn id(&self) -> &str {
            "wasm-1"
        }
        fn wait(&self) -> BoxFuture<'_, Exit> {
            Box::pin(std::future::pending())
        }
        fn stop(&self, _: Duration) -> BoxFuture<'_, Exit> {
            Box::pin(async { Exit::Code(0) })
        }
        fn stats(&self) -> Stats {
            Stats::default()
        }
    }

    struct Agent {
        addr: SocketAddr,
        seen: Arc<Mutex<Seen>>,
    }

    /// The agent endpoint's routes on a loopback port, with pod `default/web` running container
    /// `app` (host processes) and `wasm` (no exec).
    async fn agent() -> Agent {
        let running = Arc::new(RunningContainers::default());
        let seen = Arc::new(Mutex::new(Seen::default()));
        running.insert("default", "web", "app", Arc::new(HostProcesses { id: "app-0".into(), seen: seen.clone() }));
        running.insert("default", "web", "wasm", Arc::new(NoExec));
        let logs = Arc::new(LogIndex::new(std::env::temp_dir()));
        let app = crate::endpoint::app(std::env::temp_dir(), logs, running, Default::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Agent { addr, seen }
    }

    fn exec_query(command: &[&str], flags: &[&str]) -> String {
        let mut url = reqwest::Url::parse("http://agent/").unwrap();
        url.query_pairs_mut()
            .extend_pairs(command.iter().map(|c| ("command", *c)))
            .extend_pairs(flags.iter().map(|f| (*f, "true")));
        url.query().unwrap().to_string()
    }

    async fn connect(
        addr: SocketAddr,
        path: &str,
        protocols: &[&str],
    ) -> Result<(WebSocketStream<TcpStream>, String), tungstenite::Error> {
        let uri: tungstenite::http::Uri = format!("ws://{addr}{path}").parse().unwrap();
        let mut request = ClientRequestBuilder::new(uri);
        for protocol in protocols {
            request = request.with_sub_protocol(*protocol);
        }
        let stream = TcpStream::connect(addr).await.unwrap();
        let (socket, response) = tokio_tungstenite::client_async(request, stream).await?;
        let protocol = response.headers()["sec-websocket-protocol"].to_str().unwrap().to_string();
        Ok((socket, protocol))
    }

    /// What a client saw of a session, read until the server closed it.
    #[derive(Debug, Default)]
    struct Transcript {
        stdout: String,
        stderr: String,
        status: Value,
        close_code: Option<u16>,
    }

    async fn transcript(socket: &mut WebSocketStream<TcpStream>) -> Transcript {
        let mut seen = Transcript::default();
        let read = async {
            while let Some(message) = socket.next().await {
                match message.unwrap() {
                    WsMessage::Binary(data) => match data[0] {
                        STDOUT => seen.stdout.push_str(std::str::from_utf8(&data[1..]).unwrap()),
                        STDERR => seen.stderr.push_str(std::str::from_utf8(&data[1..]).unwrap()),
                        ERROR => seen.status = serde_json::from_slice(&data[1..]).unwrap(),
                        other => panic!("unexpected channel {other}"),
                    },
                    WsMessage::Close(frame) => seen.close_code = frame.map(|f| f.code.into()),
                    _ => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), read).await.expect("the session ends");
        seen
    }

    async fn send(socket: &mut WebSocketStream<TcpStream>, channel: u8, data: &[u8]) {
        socket.send(WsMessage::Binary(frame(channel, data))).await.unwrap();
    }

    #[tokio::test]
    async fn stdout_and_stderr_arrive_on_their_channels() {
        let agent = agent().await;
        let query = exec_query(&["sh", "-c", "echo out; echo err >&2; echo more"], &["stdout", "stderr"]);
        let (mut socket, protocol) =
            connect(agent.addr, &format!("/exec/default/web/app?{query}"), &[V5]).await.unwrap();
        assert_eq!(protocol, V5);
        let seen = transcript(&mut socket).await;
        assert_eq!(seen.stdout, "out\nmore\n");
        assert_eq!(seen.stderr, "err\n");
        assert_eq!(seen.status, json!({"metadata": {}, "status": "Success"}));
        assert_eq!(seen.close_code, Some(1000), "a normal closure, which client-go reads as the end");
    }

    #[tokio::test]
    async fn output_larger_than_a_pipe_arrives_whole() {
        let agent = agent().await;
        let query = exec_query(&["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x"], &["stdout", "stderr"]);
        let (mut socket, _) = connect(agent.addr, &format!("/exec/default/web/app?{query}"), &[V5]).await.unwrap();
        let seen = transcript(&mut socket).await;
        assert_eq!(seen.stdout.len(), 300_000);
        assert!(seen.stdout.bytes().all(|b| b == b'x'));
        assert_eq!(seen.status["status"], "Success");
    }

    #[tokio::test]
    async fn a_non_zero_exit_is_reported_with_its_code() {
        let agent = agent().await;
        let query = exec_query(&["sh", "-c", "echo bye; exit 3"], &["stdout", "stderr"]);
        let (mut socket, _) = connect(agent.addr, &format!("/exec/default/web/app?{query}"), &[V5]).await.unwrap();
        let seen = transcript(&mut socket).await;
        assert_eq!(seen.stdout, "bye\n");
        assert_eq!(seen.status["reason"], "NonZeroExitCode");
        assert_eq!(seen.status["details"]["causes"], json!([{"reason": "ExitCode", "message": "3"}]));
    }

    #[tokio::test]
    async fn stdin_reaches_the_command_and_its_close_is_end_of_file() {
        let agent = agent().await;
        let query = exec_query(&["cat"], &["stdin", "stdout", "stderr"]);
        let (mut socket, _) = connect(agent.addr, &format!("/exec/default/web/app?{query}"), &[V5]).await.unwrap();
        send(&mut socket, STDIN, b"hello ").await;
        send(&mut socket, STDIN, b"world\n").await;
        send(&mut socket, CLOSE, &[STDIN]).await;
        let seen = transcript(&mut socket).await;
        assert_eq!(seen.stdout, "hello world\n");
        assert_eq!(seen.status["status"], "Success", "cat saw end of file and exited: {:?}", seen.status);
        // A shim may share a file's open description (a terminal master it also reads): the
        // agent must leave it blocking.
        for file in &agent.seen.lock().unwrap().files {
            assert!(!rustix::fs::fcntl_getfl(file).unwrap().contains(rustix::fs::OFlags::NONBLOCK));
        }
    }

    #[tokio::test]
    async fn terminal_sizes_are_passed_to_the_process() {
        let agent = agent().await;
        let query = exec_query(&["sh", "-c", "read line; echo got $line"], &["stdin", "stdout", "tty"]);
        let (mut socket, _) = connect(agent.addr, &format!("/exec/default/web/app?{query}"), &[V5]).await.unwrap();
        send(&mut socket, RESIZE, br#"{"Width":120,"Height":40}"#).await;
        send(&mut socket, STDIN, b"x\n").await;
        let seen = transcript(&mut socket).await;
        assert_eq!(seen.stdout, "got x\n");
        assert_eq!(seen.status["status"], "Success");
        assert_eq!(agent.seen.lock().unwrap().resizes, [(120, 40)]);
    }

    #[tokio::test]
    async fn version_4_is_served_to_clients_that_ask_for_it() {
        let agent = agent().await;
        let query = exec_query(&["echo", "four"], &["stdout"]);
        let (mut socket, protocol) =
            connect(agent.addr, &format!("/exec/default/web/app?{query}"), &["v4.channel.k8s.io"]).await.unwrap();
        assert_eq!(protocol, "v4.channel.k8s.io");
        assert_eq!(transcript(&mut socket).await.stdout, "four\n");
    }

    #[tokio::test]
    async fn a_runtime_without_exec_says_so_on_the_error_channel() {
        let agent = agent().await;
        let query = exec_query(&["sh"], &["stdout"]);
        let (mut socket, _) = connect(agent.addr, &format!("/exec/default/web/wasm?{query}"), &[V5]).await.unwrap();
        let seen = transcript(&mut socket).await;
        assert_eq!(seen.status["status"], "Failure");
        assert_eq!(seen.status["message"], "cannot exec in container \"wasm\": exec is not supported by this runtime");
        assert_eq!(seen.close_code, Some(1000));
    }

    #[tokio::test]
    async fn requests_that_cannot_run_are_refused_with_a_status() {
        let agent = agent().await;
        let query = exec_query(&["true"], &["stdout"]);
        let refused = |result: Result<_, tungstenite::Error>| match result {
            Err(tungstenite::Error::Http(response)) => {
                let status: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
                (response.status().as_u16(), status["message"].as_str().unwrap().to_string())
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("the upgrade succeeded"),
        };
        let path = |pod: &str, container: &str, query: &str| format!("/exec/default/{pod}/{container}?{query}");
        assert_eq!(
            refused(connect(agent.addr, &path("web", "nope", &query), &[V5]).await),
            (404, "container not found (\"nope\")".to_string())
        );
        assert_eq!(
            refused(connect(agent.addr, &path("gone", "app", &query), &[V5]).await),
            (404, "container not found (\"app\")".to_string())
        );
        assert_eq!(
            refused(connect(agent.addr, &path("web", "app", "stdout=true"), &[V5]).await),
            (400, "you must specify at least one command for the container".to_string())
        );
        assert_eq!(refused(connect(agent.addr, &path("web", "app", &query), &["v9.channel.k8s.io"]).await).0, 400);
    }

    #[test]
    fn a_finished_attempt_does_not_remove_its_successor() {
        let running = RunningContainers::default();
        let seen = Arc::new(Mutex::new(Seen::default()));
        running.insert("ns", "p", "c", Arc::new(HostProcesses { id: "c-0".into(), seen: seen.clone() }));
        running.insert("ns", "p", "c", Arc::new(HostProcesses { id: "c-1".into(), seen }));
        running.remove("ns", "p", "c", "c-0");
        assert_eq!(running.get("ns", "p", "c").unwrap().id(), "c-1");
        running.remove("ns", "p", "c", "c-1");
        assert_eq!(running.get("ns", "p", "c").err().unwrap(), "container not found (\"c\")");
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn frames_start_with_their_channel() {
        assert_eq!(&frame(STDOUT, b"hi")[..], b"\x01hi");
        assert_eq!(&frame(ERROR, b"")[..], b"\x03");
    }

    #[test]
    fn exit_codes_become_statuses_client_go_reads() {
        assert_eq!(exit_status(0, &[]), json!({"metadata": {}, "status": "Success"}));
        let status = exit_status(3, &["sh".into(), "-c".into(), "exit 3".into()]);
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"], json!([{"reason": "ExitCode", "message": "3"}]));
        assert_eq!(
            status["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
        let status = failure_status(&ShimError::Unsupported("exec is not supported by this runtime".into()), "app");
        assert_eq!(status["message"], "cannot exec in container \"app\": exec is not supported by this runtime");
        assert_eq!(status["reason"], "BadRequest");
    }

    #[test]
    fn options_come_from_the_query() {
        let options = ExecOptions::from_query(&query(&[
            ("command", "sh"),
            ("command", "-c"),
            ("command", "echo a b"),
            ("stdin", "true"),
            ("stdout", "1"),
            ("stderr", "true"),
        ]))
        .unwrap();
        assert_eq!(options.command, ["sh", "-c", "echo a b"]);
        assert!(options.stdin && options.stdout && options.stderr && !options.tty);

        let tty = ExecOptions::from_query(&query(&[
            ("command", "sh"),
            ("stdout", "true"),
            ("stderr", "true"),
            ("tty", "true"),
        ]))
        .unwrap();
        assert!(tty.tty && tty.stdout && !tty.stderr, "a terminal carries stderr on stdout");

        assert_eq!(
            ExecOptions::from_query(&query(&[("stdout", "true")])).unwrap_err(),
            "you must specify at least one command for the container"
        );
        assert_eq!(
            ExecOptions::from_query(&query(&[("command", "ls")])).unwrap_err(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        assert_eq!(
            ExecOptions::from_query(&query(&[("command", "ls"), ("stdout", "yes")])).unwrap_err(),
            "invalid value for stdout: \"yes\""
        );
    }

    #[test]
    fn terminal_sizes_are_read_whole_across_messages() {
        let mut pending = br#"{"Width":80,"Height":24}"#.to_vec();
        pending.extend_from_slice(b"\n{\"Width\":120,");
        assert_eq!(
            take_sizes(&mut pending),
            [TerminalSize { width: 80, height: 24 }],
            "the complete size is taken, the partial one waits"
        );
        pending.extend_from_slice(b"\"Height\":40}\n");
        assert_eq!(take_sizes(&mut pending), [TerminalSize { width: 120, height: 40 }]);
        assert!(take_sizes(&mut pending).is_empty());
        pending.extend_from_slice(b"garbage");
        assert!(take_sizes(&mut pending).is_empty());
        assert!(pending.is_empty(), "what cannot be a size is dropped");
    }
}
