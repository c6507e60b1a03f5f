//! Runs each cargo-fuzz target of `fuzz/` (manifest decoding and validation, patches, selectors)
//! for a bounded time from the committed seed corpora, and fails with the crashing input's path and
//! the panic if libFuzzer finds one. Prints the executions per target.
//!
//! Built with `--sanitizer none`: Wharf's code denies `unsafe`, so AddressSanitizer would find
//! little and double the build and run time; what the fuzzers look for is panics (index, unwrap,
//! overflow — the `--dev` build keeps overflow checks), stack overflows, hangs and memory blowups.
//! `WHARF_FUZZ_SECONDS` changes the time per target (default 20).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const TARGETS: &[&str] = &["manifest", "patch", "selector"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // cargo fuzz passes nightly flags (-Z, sanitizer coverage); the stable toolchain takes them
    // with RUSTC_BOOTSTRAP.
    cmd.env("RUSTC_BOOTSTRAP", "1").current_dir(root().join("fuzz"));
    cmd
}

/// The fuzz build's flags: unoptimized with overflow checks (a fast rebuild when wharf-control
/// changes), no sanitizer, in the workspace's target directory.
fn build_args() -> Vec<String> {
    let target_dir = root().join("target/fuzz");
    ["--dev", "--sanitizer", "none", "--target-dir"]
        .into_iter()
        .map(str::to_string)
        .chain([target_dir.display().to_string()])
        .collect()
}

/// The built binary of a target (`target/fuzz/<host triple>/debug/<target>`).
fn binary(target: &str) -> PathBuf {
    let dir = root().join("target/fuzz");
    std::fs::read_dir(&dir)
        .expect("target/fuzz exists after the build")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("debug").join(target))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no fuzz binary for {target} under {}", dir.display()))
}

/// libFuzzer's final count of executed inputs.
fn executions(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|l| l.strip_prefix("stat::number_of_executed_units:")).and_then(|n| n.trim().parse().ok())
}

/// The crashing input libFuzzer saved and what it printed about it (the panic, the kind of
/// failure: deadly signal, timeout, out-of-memory, stack overflow).
fn crash_report(stderr: &str) -> String {
    let artifact = stderr
        .lines()
        .find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p.trim().to_string()))
        .unwrap_or_else(|| "(no artifact written)".into());
    let interesting: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            l.contains("panicked at")
                || l.starts_with("==")
                || l.contains("ERROR: libFuzzer")
                || l.contains("stack overflow")
                || l.contains("SUMMARY")
        })
        .take(12)
        .collect();
    // The panic message is on the line after "panicked at".
    let panic_lines: Vec<&str> = stderr.lines().skip_while(|l| !l.contains("panicked at")).take(3).collect();
    format!("crashing input: {artifact}\n{}\n{}", interesting.join("\n"), panic_lines.join("\n"))
}

#[test]
fn fuzz_targets_find_no_crash() {
    let version = cargo().arg("fuzz").arg("--version").output();
    let installed = version.as_ref().is_ok_and(|o| o.status.success());
    assert!(
        installed,
        "cargo-fuzz is not installed (cargo fuzz --version failed): install it with `cargo install cargo-fuzz --locked`"
    );
    let seconds: u64 = std::env::var("WHARF_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);

    let started = Instant::now();
    let build = cargo().args(["fuzz", "build"]).args(build_args()).output().expect("cargo fuzz build runs");
    assert!(
        build.status.success(),
        "cargo fuzz build failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("fuzz build: {:.1} s", started.elapsed().as_secs_f64());

    let work = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    for target in TARGETS {
        let seeds = root().join("fuzz/seeds").join(target);
        assert!(seeds.is_dir(), "the seed corpus {} is missing", seeds.display());
        // New inputs go to a scratch corpus; crashes stay in fuzz/artifacts/TARGET/ to reproduce
        // (`cargo fuzz run --dev --sanitizer none TARGET fuzz/artifacts/TARGET/crash-...`).
        let corpus = work.path().join(target);
        let artifacts = root().join("fuzz/artifacts").join(target);
        std::fs::create_dir_all(&corpus).expect("corpus dir");
        std::fs::create_dir_all(&artifacts).expect("artifacts dir");
        let run_started = Instant::now();
        let run = Command::new(binary(target))
            .arg(&corpus)
            .arg(&seeds)
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .args(["-print_final_stats=1", "-timeout=10", "-rss_limit_mb=2048", "-max_len=16384"])
            .output()
            .expect("the fuzz target runs");
        let stderr = String::from_utf8_lossy(&run.stderr);
        let elapsed = run_started.elapsed();
        let execs = executions(&stderr);
        let corpus_size = std::fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
        println!(
            "fuzz {target}: {} executions in {:.1} s ({:.0}/s), {corpus_size} new corpus inputs, exit {:?}",
            execs.map_or("?".into(), |n| n.to_string()),
            elapsed.as_secs_f64(),
            execs.unwrap_or(0) as f64 / elapsed.as_secs_f64().max(0.001),
            run.status.code()
        );
        if !run.status.success() {
            failures.push(format!("fuzz target {target} crashed:\n{}", crash_report(&stderr)));
        } else if execs.is_none() {
            failures.push(format!("fuzz target {target} printed no statistics:\n{}", tail(&stderr, 20)));
        }
    }
    println!("fuzz total: {:.1} s", started.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
