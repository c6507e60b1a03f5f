//! http-hello: a WASI preview 2 component in the `wasi:http/proxy` world. It exports
//! `wasi:http/incoming-handler` and answers every request with `hello from wasm`, logging one
//! line per request to stderr (which becomes the container log).
//!
//! It is `no_std` so that its imports stay inside the proxy world (see Cargo.toml): the
//! allocator comes from dlmalloc and a panic logs to stderr, then traps.

#![no_std]

extern crate alloc;

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};

#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

const BODY: &[u8] = b"hello from wasm\n";

struct HttpHello;

impl Guest for HttpHello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        log(&format!("{} {path}", method_name(&request.method())));

        let headers = Fields::from_list(&[
            ("content-type".to_owned(), b"text/plain; charset=utf-8".to_vec()),
            ("content-length".to_owned(), BODY.len().to_string().into_bytes()),
        ])
        .expect("static headers are valid");
        let response = OutgoingResponse::new(headers); // status 200 unless set otherwise
        let body = response.body().expect("the response body is taken once");
        ResponseOutparam::set(response_out, Ok(response));

        let stream = body.write().expect("the body stream is taken once");
        // BODY is far below the 4096 bytes one blocking write may carry. (The server drops the
        // body of an answer to HEAD.)
        if let Err(err) = stream.blocking_write_and_flush(BODY) {
            log(&format!("writing the response body failed: {err:?}"));
            return;
        }
        // The stream must be dropped before its body is finished.
        drop(stream);
        if let Err(err) = OutgoingBody::finish(body, None) {
            log(&format!("finishing the response failed: {err:?}"));
        }
    }
}

fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(name) => name,
    }
}

/// Writes one line to stderr (wasi:cli/stderr, part of the proxy world).
fn log(line: &str) {
    let mut bytes: Vec<u8> = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let stderr = wasip2::cli::stderr::get_stderr();
    // One blocking write carries at most 4096 bytes.
    for chunk in bytes.chunks(4096) {
        if stderr.blocking_write_and_flush(chunk).is_err() {
            return;
        }
    }
}

/// The canonical ABI's allocator entry point: the host calls it to place strings and lists it
/// passes in (the request's path, say) in our memory. With std, wasi-libc would provide it.
#[unsafe(no_mangle)]
unsafe extern "C" fn cabi_realloc(old_ptr: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
    use alloc::alloc::{Layout, alloc, handle_alloc_error, realloc};
    if new_len == 0 {
        // Nothing to hold: any well-aligned, non-null pointer will do.
        return align as *mut u8;
    }
    // The host only asks for alignments that are powers of two and sizes that fit.
    let new_layout = Layout::from_size_align(new_len, align).unwrap_or_else(|_| panic!("bad layout"));
    let ptr = if old_len == 0 {
        // SAFETY: new_layout has a non-zero size.
        unsafe { alloc(new_layout) }
    } else {
        // SAFETY: the host passes back a block it got from this function with this alignment
        // and old size, and new_len is non-zero.
        unsafe { realloc(old_ptr, Layout::from_size_align_unchecked(old_len, align), new_len) }
    };
    if ptr.is_null() {
        handle_alloc_error(new_layout);
    }
    ptr
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    log(&format!("http-hello panicked: {info}"));
    core::arch::wasm32::unreachable()
}

wasip2::http::proxy::export!(HttpHello);
