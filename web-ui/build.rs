//! Builds the dashboard (`npm ci` when its packages changed, then `npm run build`) into OUT_DIR
//! and writes the table of its files, each gzipped, that `src/lib.rs` embeds.
//! `WHARF_WEB_UI_DIST=DIR` embeds a build made elsewhere instead (a machine without Node.js).

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

const SOURCES: &[&str] = &["app", "index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json"];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=WHARF_WEB_UI_DIST");
    let dist = match std::env::var_os("WHARF_WEB_UI_DIST") {
        Some(dir) => PathBuf::from(dir),
        None => {
            for source in SOURCES {
                println!("cargo:rerun-if-changed={}", root.join(source).display());
            }
            npm_build(&root, &out.join("dist"))
        }
    };
    assert!(
        dist.join("index.html").is_file(),
        "{} has no index.html: it is not a build of the dashboard (web-ui/: npm ci && npm run build)",
        dist.display()
    );
    embed(&dist, &out);
}

fn npm_build(root: &Path, dist: &Path) -> PathBuf {
    let node = Command::new("node").arg("--version").output().ok().filter(|o| o.status.success());
    let version = node.map(|o| String::from_utf8_lossy(&o.stdout).trim().trim_start_matches('v').to_string());
    let parts: Vec<u32> = version.iter().flat_map(|v| v.split('.')).filter_map(|p| p.parse().ok()).collect();
    let recent = matches!(parts.as_slice(), [major, minor, ..] if (*major, *minor) >= (20, 19));
    if !recent || Command::new("npm").arg("--version").output().is_err() {
        let found = version.map_or("no Node.js".to_string(), |v| format!("Node.js {v}"));
        fail(&format!(
            "Wharf's dashboard (web-ui/) is built with Node.js 20.19 or later and npm; this machine has {found}.\n\
             Install them (https://nodejs.org/en/download; Debian 12's own nodejs is 18, too old for Vite),\n\
             or build the dashboard elsewhere (cd web-ui && npm ci && npm run build) and set\n\
             WHARF_WEB_UI_DIST=/path/to/web-ui/dist."
        ));
    }
    // Builds of several profiles can run this at once; one npm at a time in web-ui/.
    let lock = File::create(root.join(".build.lock")).expect("create web-ui/.build.lock");
    lock.lock().expect("lock web-ui/.build.lock");
    let installed = root.join("node_modules/.package-lock.json");
    let stale = match (fs::metadata(&installed), fs::metadata(root.join("package-lock.json"))) {
        (Ok(installed), Ok(lock)) => installed.modified().unwrap() < lock.modified().unwrap(),
        _ => true,
    };
    if stale {
        run(root, &["ci", "--no-audit", "--no-fund"]);
    }
    run(root, &["run", "build", "--", "--outDir", dist.to_str().unwrap(), "--emptyOutDir"]);
    dist.to_path_buf()
}

fn run(root: &Path, args: &[&str]) {
    let output = Command::new("npm").args(args).current_dir(root).output().expect("run npm");
    if !output.status.success() {
        fail(&format!(
            "`npm {}` in {} failed:\n{}\n{}",
            args.join(" "),
            root.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
}

/// Stops the build with `message` (cargo shows a build script's stderr), without a backtrace.
fn fail(message: &str) -> ! {
    eprintln!("\n{message}\n");
    std::process::exit(1)
}

/// Writes OUT_DIR/assets.rs: one `Asset` per file of `dist`, its bytes and its gzip.
fn embed(dist: &Path, out: &Path) {
    let mut files = Vec::new();
    walk(dist, &mut files);
    files.sort();
    let gz_dir = out.join("gz");
    let _ = fs::remove_dir_all(&gz_dir);
    fs::create_dir_all(&gz_dir).unwrap();
    let mut table = String::from("pub(crate) static ASSETS: &[Asset] = &[\n");
    for (i, file) in files.iter().enumerate() {
        let rel = file.strip_prefix(dist).unwrap().to_str().unwrap().replace('\\', "/");
        let bytes = fs::read(file).unwrap();
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&bytes).unwrap();
        let gz = gz_dir.join(format!("{i}.gz"));
        fs::write(&gz, encoder.finish().unwrap()).unwrap();
        let etag = format!("\"{}\"", &format!("{:x}", Sha256::digest(&bytes))[..16]);
        writeln!(
            table,
            "    Asset {{ path: {rel:?}, content_type: {:?}, etag: {:?}, bytes: include_bytes!({:?}), gzip: include_bytes!({:?}) }},",
            content_type(&rel),
            etag,
            file.canonicalize().unwrap(),
            gz
        )
        .unwrap();
    }
    table.push_str("];\n");
    fs::write(out.join("assets.rs"), table).unwrap();
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { walk(&path, files) } else { files.push(path) }
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
