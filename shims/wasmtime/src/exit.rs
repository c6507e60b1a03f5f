//! How a guest's end maps to a container `Exit`, kubelet-style:
//!
//! - `_start`/`run` returns → `Code(0)` (`run` returning an error → `Code(1)`);
//!   `proc_exit(n)` / `wasi:cli/exit` → `Code(n)`.
//! - A growth refused by the memory limit, followed by anything but exit code 0 (a trap, an
//!   abort, a non-zero exit) → `OutOfMemory`. A guest that handles the refusal and exits 0
//!   completed normally.
//! - A trap → `Failed { code: 134 }` (128 + SIGABRT: what a native process that aborts
//!   reports, and the wasmtime CLI's exit status for a trap) with the trap text and Wasm
//!   backtrace; any other runtime error → `Failed { code: 1 }`.
//! - `stop` → `Killed { signal: 9 }` (decided by the container, not here).

use wasmtime::{Trap, WasmBacktrace};
use wasmtime_wasi::I32Exit;
use wharf_shim::Exit;

/// Exit code reported for a trap.
pub const TRAP_EXIT_CODE: i32 = 134;
/// Exit code reported for a runtime error that is not a trap (e.g. instantiation failed).
pub const ERROR_EXIT_CODE: i32 = 1;
/// Longest failure message kept (Kubernetes' termination message limit).
const MAX_MESSAGE: usize = 4096;

pub(crate) fn classify(outcome: wasmtime::Result<i32>, hit_memory_limit: bool) -> Exit {
    let code = match outcome {
        Ok(code) => code,
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(I32Exit(code)) => *code,
            None if hit_memory_limit => return Exit::OutOfMemory,
            None => return failure(&e),
        },
    };
    if code != 0 && hit_memory_limit { Exit::OutOfMemory } else { Exit::Code(code) }
}

fn failure(e: &wasmtime::Error) -> Exit {
    let (code, mut message) = match e.downcast_ref::<Trap>() {
        Some(trap) => {
            let mut message = trap.to_string();
            if let Some(backtrace) = e.downcast_ref::<WasmBacktrace>() {
                message.push('\n');
                message.push_str(backtrace.to_string().trim_end());
            }
            (TRAP_EXIT_CODE, message)
        }
        None => (ERROR_EXIT_CODE, format!("{e:#}")),
    };
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    Exit::Failed { code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(classify(Ok(0), false), Exit::Code(0));
        assert_eq!(classify(Ok(1), false), Exit::Code(1));
        assert_eq!(classify(Err(I32Exit(3).into()), false), Exit::Code(3));
        assert_eq!(classify(Err(I32Exit(0).into()), true), Exit::Code(0));
        assert_eq!(classify(Err(I32Exit(1).into()), true), Exit::OutOfMemory);
    }

    #[test]
    fn failures() {
        assert_eq!(classify(Err(Trap::UnreachableCodeReached.into()), true), Exit::OutOfMemory);
        let Exit::Failed { code, message } = classify(Err(Trap::UnreachableCodeReached.into()), false) else {
            panic!("not a failure")
        };
        assert_eq!(code, TRAP_EXIT_CODE);
        assert!(message.contains("unreachable"), "{message}");
        let long = "x".repeat(10_000);
        assert_eq!(
            classify(Err(wasmtime::format_err!("{long}")), false),
            Exit::Failed { code: ERROR_EXIT_CODE, message: "x".repeat(MAX_MESSAGE) }
        );
    }
}
