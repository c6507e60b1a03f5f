//! ticker: a long-running WASI preview 1 command that prints `tick N` once a second, forever.
//! The sleep is real (std::thread::sleep is WASI's poll_oneoff on a clock), so the runtime sees
//! an idle guest between ticks, and stopping it takes the runtime interrupting it.

use std::io::{self, Write};
use std::thread;
use std::time::Duration;

fn main() {
    println!("ticker started");
    let stdout = io::stdout();
    let mut n: u64 = 0;
    loop {
        n += 1;
        let mut out = stdout.lock();
        if writeln!(out, "tick {n}").and_then(|()| out.flush()).is_err() {
            // The host closed stdout: nobody is listening any more.
            std::process::exit(2);
        }
        drop(out);
        thread::sleep(Duration::from_secs(1));
    }
}
