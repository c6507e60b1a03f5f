//! hello: a WASI preview 1 command that shows what the runtime gave it — its arguments, the
//! GREETING environment variable and the files of a volume mounted at /config — then exits 0.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

const CONFIG_DIR: &str = "/config";

fn main() {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    // Writing to stdout only fails if the host closed it; there is nothing better to do then.
    let _ = run(&mut out);
}

fn run(out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "hello from wasm")?;

    for (i, arg) in std::env::args_os().enumerate() {
        writeln!(out, "arg[{i}]={}", arg.to_string_lossy())?;
    }

    match std::env::var("GREETING") {
        Ok(greeting) => writeln!(out, "GREETING={greeting}")?,
        Err(std::env::VarError::NotPresent) => writeln!(out, "GREETING is not set")?,
        Err(std::env::VarError::NotUnicode(raw)) => writeln!(out, "GREETING={}", raw.to_string_lossy())?,
    }

    let config = Path::new(CONFIG_DIR);
    if config.is_dir() {
        print_files(out, config)?;
    } else {
        writeln!(out, "{CONFIG_DIR} is not mounted")?;
    }
    out.flush()
}

/// Prints every regular file under `dir`, sorted by name, recursing into subdirectories. Names
/// starting with `..` are skipped: Kubernetes-style ConfigMap volumes keep their real files in
/// `..data/` and link each key to it, so the keys alone show each file once.
fn print_files(out: &mut impl Write, dir: &Path) -> io::Result<()> {
    let mut entries = match fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect::<Vec<_>>(),
        Err(err) => return writeln!(out, "{}: cannot list: {err}", dir.display()),
    };
    entries.sort();
    for path in entries {
        let hidden = path.file_name().is_some_and(|name| name.to_string_lossy().starts_with(".."));
        if hidden {
            continue;
        }
        // fs::metadata follows symlinks, so a key linked to `..data/KEY` reads as a file.
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => print_files(out, &path)?,
            Ok(meta) if meta.is_file() => match fs::read(&path) {
                Ok(bytes) => {
                    let content = String::from_utf8_lossy(&bytes);
                    writeln!(out, "{}: {}", path.display(), content.trim_end_matches('\n'))?
                }
                Err(err) => writeln!(out, "{}: cannot read: {err}", path.display())?,
            },
            Ok(_) => {}
            Err(err) => writeln!(out, "{}: {err}", path.display())?,
        }
    }
    Ok(())
}
