//! gRPC probes: `grpc.health.v1.Health/Check` over plaintext HTTP/2; SERVING passes. The
//! two small protobuf messages are written and read by hand.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HeaderValue, TE, USER_AGENT};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::Instant;

use super::http::alongside;
use super::{OUTPUT_LIMIT, Outcome, USER_AGENT as PROBE_AGENT, net};

const STATUSES: [&str; 4] = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

pub(super) async fn check(netns: Option<&Path>, host: &str, port: u16, service: &str, timeout: Duration) -> Outcome {
    let deadline = Instant::now() + timeout;
    let addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let stream = match net::connect(netns, host, port, deadline).await {
        Ok(stream) => stream,
        Err(Outcome::Failure(dial)) if dial.ends_with("i/o timeout") => {
            return Outcome::Failure(format!("timeout: failed to connect service {addr:?} within {timeout:?}"));
        }
        Err(Outcome::Failure(dial)) => {
            return Outcome::Failure(format!("error: failed to connect service at {addr:?}: {dial}"));
        }
        Err(other) => return other,
    };
    let call = health_check(TokioIo::new(stream), &addr, service);
    let answer = match tokio::time::timeout_at(deadline, call).await {
        Err(_) => return Outcome::Failure(format!("timeout: health rpc did not complete within {timeout:?}")),
        Ok(Err(e)) => return Outcome::Failure(format!("error: health rpc probe failed: {e}")),
        Ok(Ok(answer)) => answer,
    };
    match answer {
        Answer::Status(1) => Outcome::Success,
        Answer::Status(n) => {
            let name = STATUSES.get(n as usize).map_or_else(|| n.to_string(), |s| s.to_string());
            Outcome::Failure(format!("service unhealthy (responded with {name:?})"))
        }
        Answer::Rpc { code: 12, message } => Outcome::Failure(format!(
            "this server doesn't implement the grpc health protocol (grpc.health.v1.Health): {message}"
        )),
        Answer::Rpc { code, message } => {
            let code = CODES.get(code as usize).map_or_else(|| code.to_string(), |c| c.to_string());
            Outcome::Failure(format!("error: health rpc probe failed: rpc error: code = {code} desc = {message}"))
        }
    }
}

enum Answer {
    /// The `HealthCheckResponse.status` of a successful call.
    Status(u64),
    /// A call that ended with a non-OK grpc-status.
    Rpc { code: u32, message: String },
}

async fn health_check(io: TokioIo<tokio::net::TcpStream>, addr: &str, service: &str) -> Result<Answer, String> {
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.map_err(|e| e.to_string())?;
    // HealthCheckRequest { string service = 1; } in a gRPC frame: no compression, then length.
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a);
        varint(service.len() as u64, &mut message);
        message.extend_from_slice(service.as_bytes());
    }
    let mut frame = vec![0];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let request = Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header(CONTENT_TYPE, HeaderValue::from_static("application/grpc"))
        .header(TE, HeaderValue::from_static("trailers"))
        .header(USER_AGENT, HeaderValue::from_static(PROBE_AGENT))
        .body(Full::new(Bytes::from(frame)))
        .map_err(|e| e.to_string())?;
    let call = async move {
        let response = sender.send_request(request).await?;
        let (head, mut body) = response.into_parts();
        let mut data = Vec::new();
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            match frame?.into_data() {
                Ok(chunk) if data.len() < OUTPUT_LIMIT => data.extend_from_slice(&chunk),
                Ok(_) => {}
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        Ok((head, data, trailers))
    };
    let (head, data, trailers) = alongside(conn, call).await.map_err(|e| e.to_string())?;
    if head.status != 200 {
        return Err(format!("unexpected HTTP status code {} from the server", head.status.as_u16()));
    }
    // A trailers-only answer puts grpc-status in the headers.
    let fields = trailers.as_ref().unwrap_or(&head.headers);
    let text = |name| fields.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).unwrap_or("").to_string();
    let code = text("grpc-status").parse::<u32>().map_err(|_| "the answer has no grpc-status".to_string())?;
    if code != 0 {
        return Ok(Answer::Rpc { code, message: text("grpc-message") });
    }
    // HealthCheckResponse { ServingStatus status = 1; }: field 1 as a varint, 0 when absent.
    let malformed = || "the answer's message is malformed".to_string();
    let mut rest = data.get(5..).ok_or("the answer has no message")?;
    let mut status = 0;
    while !rest.is_empty() {
        let (key, after) = read_varint(rest).ok_or_else(malformed)?;
        rest = match key & 7 {
            0 => {
                let (value, after) = read_varint(after).ok_or_else(malformed)?;
                if key == 0x08 {
                    status = value;
                }
                after
            }
            1 => after.get(8..).ok_or_else(malformed)?,
            2 => {
                let (len, after) = read_varint(after).ok_or_else(malformed)?;
                after.get(len as usize..).ok_or_else(malformed)?
            }
            5 => after.get(4..).ok_or_else(malformed)?,
            _ => return Err(malformed()),
        };
    }
    Ok(Answer::Status(status))
}

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}
