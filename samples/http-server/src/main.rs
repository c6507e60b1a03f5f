//! http-server: a WASI preview 2 command that listens on TCP port `PORT` (default 8080) of all
//! addresses and answers every HTTP request with `hello from wasm socket`. It logs
//! `listening on 0.0.0.0:PORT` once bound and `METHOD /path from ADDR` per request; when it
//! cannot listen (no wasi-sockets granted, port taken) it says why on stderr and exits 1.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

const BODY: &str = "hello from wasm socket\n";

fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let address = format!("0.0.0.0:{port}");
    let listener = match TcpListener::bind(&address) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {address}: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on {address}");
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                if let Err(e) = answer(stream) {
                    eprintln!("request failed: {e}");
                }
            }
            Err(e) => eprintln!("accept failed: {e}"),
        }
    }
}

/// Reads the request head (request line and headers) and answers it; the body, if any, is
/// not read: every request gets the same answer, and the connection is closed after it.
fn answer(stream: TcpStream) -> std::io::Result<()> {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("?"), parts.next().unwrap_or("?"));
    println!("{method} {path} from {peer}");
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    (&stream).write_all(response.as_bytes())?;
    (&stream).flush()
}
