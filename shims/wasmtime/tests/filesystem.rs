//! Mounts as WASI preopens: read-only honoured, nothing else visible, working directory.

mod common;

use common::{Fixture, mount, wasi_module};
use wharf_shim::{Exit, Shim, Stream};

/// Probes the filesystem and prints one line per finding:
/// - the name of preopen fd 3, and whether fd 4 exists;
/// - the content of `hello.txt` under fd 3;
/// - whether creating `new.txt` under fd 3 (with write rights) succeeds;
/// - whether `../` escapes fd 3.
fn probe() -> String {
    wasi_module(
        r#"(data (i32.const 1000) "hello.txt")
        (data (i32.const 1010) "new.txt")
        (data (i32.const 1020) "../etc")
        (data (i32.const 1030) "\nfd4-missing\n")
        (data (i32.const 1050) "write-ok\n")
        (data (i32.const 1060) "write-denied\n")
        (data (i32.const 1080) "escape-denied\n")
        (data (i32.const 1100) "escaped\n")
        (data (i32.const 1110) "fd4-exists\n")
        (func (export "_start")
          (local $fd i32)
          ;; Name of preopen 3.
          (if (call $fd_prestat_get (i32.const 3) (i32.const 100)) (then (unreachable)))
          (drop (call $fd_prestat_dir_name (i32.const 3) (i32.const 200) (i32.load (i32.const 104))))
          (call $print (i32.const 1) (i32.const 200) (i32.load (i32.const 104)))
          ;; fd 4: EBADF (8) when there is no second preopen.
          (if (i32.eq (call $fd_prestat_get (i32.const 4) (i32.const 100)) (i32.const 8))
            (then (call $print (i32.const 1) (i32.const 1030) (i32.const 13)))
            (else (call $print (i32.const 1) (i32.const 1110) (i32.const 11))))
          ;; Read hello.txt (rights: fd_read).
          (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 1000) (i32.const 9)
                (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 300))
            (then (unreachable)))
          (i32.store (i32.const 400) (i32.const 2048))
          (i32.store (i32.const 404) (i32.const 512))
          (drop (call $fd_read (i32.load (i32.const 300)) (i32.const 400) (i32.const 1) (i32.const 304)))
          (call $print (i32.const 1) (i32.const 2048) (i32.load (i32.const 304)))
          ;; Create new.txt (oflags: creat; rights: fd_write) and write into it.
          (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 1010) (i32.const 7)
                (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 300))
            (then (call $print (i32.const 1) (i32.const 1060) (i32.const 13)))
            (else
              (call $print (i32.load (i32.const 300)) (i32.const 1050) (i32.const 9))
              (call $print (i32.const 1) (i32.const 1050) (i32.const 9))))
          ;; Escape with ../
          (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 1020) (i32.const 6)
                (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 300))
            (then (call $print (i32.const 1) (i32.const 1080) (i32.const 14)))
            (else (call $print (i32.const 1) (i32.const 1100) (i32.const 8)))))"#,
    )
}

fn host_dirs(fx: &Fixture) -> std::path::PathBuf {
    let data = fx.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("hello.txt"), "from the host").unwrap();
    // A sibling the guest must not reach.
    std::fs::create_dir_all(fx.dir.path().join("etc")).unwrap();
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_mount_reads_but_does_not_write() {
    let fx = Fixture::new();
    let data = host_dirs(&fx);
    let (mut spec, sink) = fx.spec(probe(), &["probe"]);
    spec.mounts = vec![mount(&data, "/data", true)];
    assert_eq!(fx.run(spec).await, Exit::Code(0));
    assert_eq!(sink.text(Stream::Stdout), "/data\nfd4-missing\nfrom the hostwrite-denied\nescape-denied\n");
    assert!(!data.join("new.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_write_mount_writes() {
    let fx = Fixture::new();
    let data = host_dirs(&fx);
    let (mut spec, sink) = fx.spec(probe(), &["probe"]);
    spec.mounts = vec![mount(&data, "/data", false)];
    assert_eq!(fx.run(spec).await, Exit::Code(0));
    assert_eq!(sink.text(Stream::Stdout), "/data\nfd4-missing\nfrom the hostwrite-ok\nescape-denied\n");
    assert_eq!(std::fs::read_to_string(data.join("new.txt")).unwrap(), "write-ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_mounts_there_is_no_filesystem() {
    let fx = Fixture::new();
    let no_fs = wasi_module(
        r#"(func (export "_start") (call $proc_exit (call $fd_prestat_get (i32.const 3) (i32.const 100))))"#,
    );
    // EBADF: fd 3 is not a preopen (nor anything else).
    assert_eq!(fx.run(fx.spec(no_fs, &["x"]).0).await, Exit::Code(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn working_dir_inside_a_mount_is_preopened_as_dot() {
    let fx = Fixture::new();
    let data = host_dirs(&fx);
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/hello.txt"), "from sub").unwrap();
    // The probe reads hello.txt through fd 3; with the working directory's preopen as fd 4,
    // read its name and file the same way.
    let cwd = wasi_module(
        r#"(data (i32.const 1000) "hello.txt")
        (func (export "_start")
          (if (call $fd_prestat_get (i32.const 4) (i32.const 100)) (then (unreachable)))
          (drop (call $fd_prestat_dir_name (i32.const 4) (i32.const 200) (i32.load (i32.const 104))))
          (call $print (i32.const 1) (i32.const 200) (i32.load (i32.const 104)))
          (if (call $path_open (i32.const 4) (i32.const 0) (i32.const 1000) (i32.const 9)
                (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 300))
            (then (unreachable)))
          (i32.store (i32.const 400) (i32.const 2048))
          (i32.store (i32.const 404) (i32.const 512))
          (drop (call $fd_read (i32.load (i32.const 300)) (i32.const 400) (i32.const 1) (i32.const 304)))
          (call $print (i32.const 1) (i32.const 2048) (i32.load (i32.const 304))))"#,
    );
    let (mut spec, sink) = fx.spec(cwd, &["cwd"]);
    spec.mounts = vec![mount(&data, "/data", true)];
    spec.working_dir = Some("/data/sub".into());
    assert_eq!(fx.run(spec).await, Exit::Code(0));
    assert_eq!(sink.text(Stream::Stdout), ".from sub");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_mount_source_fails_the_start() {
    let fx = Fixture::new();
    let (mut spec, _) = fx.spec(probe(), &["probe"]);
    spec.mounts = vec![mount(&fx.dir.path().join("absent"), "/data", true)];
    let error = fx.shim.start(spec).await.err().expect("start must fail");
    assert!(matches!(error, wharf_shim::ShimError::Runtime(_)), "{error:?}");
}
