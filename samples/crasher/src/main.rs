//! crasher: a WASI preview 1 command that prints a line and exits with status 1, for trying
//! restart policies (restartPolicy: Always takes it to CrashLoopBackOff).

fn main() {
    println!("crasher: starting, and about to fail");
    eprintln!("crasher: exiting with status 1");
    std::process::exit(1);
}
