//! Prints each file named by its arguments (paths inside a preopened directory, such as a
//! mounted volume: `cat /data/message`), then exits 0; exits 1 if a file cannot be read.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    let mut stdout = std::io::stdout().lock();
    for path in std::env::args().skip(1) {
        match std::fs::read(&path) {
            Ok(content) => {
                let _ = stdout.write_all(&content);
            }
            Err(e) => {
                eprintln!("cat: {path}: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    let _ = stdout.flush();
    status
}
