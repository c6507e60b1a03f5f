//! `wharf bench datastore`: the API server on Postgres against the API server on SQLite, in the
//! same run, on the same machine, with the same clients.
//!
//! Three phases, each on servers of its own (started from this binary with `--no-agent` on fresh
//! data dirs and free loopback ports, stopped by their PIDs at the end of the phase):
//!
//! - **SQLite, 1 server**: the default datastore (`DATA_DIR/wharf.db`). SQLite is one server only:
//!   its file belongs to one process, so there is no 3-server SQLite phase.
//! - **Postgres, 1 server** and **Postgres, 3 servers**: a fresh database `wharf_bench_<random>`
//!   created from `--postgres` for the phase and dropped after it. The first server gets
//!   `--datastore URL`; the others join it (`--join URL1 --token <DIR1/server.token>`).
//!
//! In each phase:
//!
//! - **Create throughput and latency**: `--clients` clients (kube-rs, one connection each, spread
//!   round-robin over the phase's servers) create `--objects` ConfigMaps of 1 KiB, each client
//!   sending its next create when its previous one was acknowledged; creates/s = acknowledged ÷
//!   (first sent → last acknowledged); p50/p99/max of the round trip.
//! - **Watch delay**: one watcher on every server follows a namespace; `--watch-samples` creates go
//!   one at a time through server 1 (the next when the previous one's event reached every
//!   watcher). The delay is from just before the create is sent to the moment the watcher on a
//!   server reads its ADDED event: on server 1 itself (the same-server reference) and on each other
//!   server (the delay between servers).
//!
//! All traffic stays on 127.0.0.1 (and the Postgres URL's host); the only processes stopped are
//! the ones this command started; the only databases dropped are the ones it created.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::BuildHasher as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{ListParams, PostParams};
use sqlx::Connection as _;
use tokio::sync::mpsc;

use super::{
    Creates, PHASE_LIMIT, REQUEST_LIMIT, Server, bench_dir, build, count, cpu_of, create_all, latencies, machine_cpu,
    memory_total, meta, ms, percentile, problems_section, progress, secs, table, thousands,
};

/// The Postgres the tests use (scripts/test starts it), when neither `--postgres` nor
/// `WHARF_TEST_DATABASE_URL` says otherwise.
const DEFAULT_POSTGRES: &str = "postgres://wharf:wharf@127.0.0.1:5432/postgres";
/// Namespaces of the throughput and the watch-delay creates.
const THROUGHPUT_NS: &str = "bench-datastore";
const WATCH_NS: &str = "bench-watch";
/// Longest wait for one event at one watcher.
const EVENT_LIMIT: Duration = Duration::from_secs(10);
/// Longest wait for a namespace created through server 1 to be visible through another server.
const VISIBLE_LIMIT: Duration = Duration::from_secs(30);

#[derive(clap::Args)]
pub struct DatastoreArgs {
    /// A Postgres URL of a role that may create databases; each Postgres phase creates a fresh
    /// database from it and drops it afterwards.
    #[arg(long, env = "WHARF_TEST_DATABASE_URL", hide_env_values = true, default_value = DEFAULT_POSTGRES)]
    postgres: String,
    /// ConfigMaps created in each throughput phase.
    #[arg(long, default_value_t = 3_000)]
    objects: usize,
    /// Concurrent creating clients, each with its own connection, spread over the servers.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Creates, one at a time through server 1, whose events are timed at every server's watcher.
    #[arg(long, default_value_t = 500)]
    watch_samples: usize,
    /// Rounds of the three phases, one after the other (on a busy machine, several rounds show how
    /// much of a difference is the machine's).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Servers in the multi-server Postgres phase.
    #[arg(long, default_value_t = 3)]
    servers: usize,
    /// Where the temporary data dirs go (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "Postgres",
        }
    }
}

/// What one phase measured.
struct Outcome {
    /// 1-based.
    round: usize,
    backend: Backend,
    servers: usize,
    /// Spawn → `/readyz` of each server, in start order.
    ready_after: Vec<Duration>,
    creates: Creates,
    /// One per server: creates through server 1, watcher on server `i + 1`.
    delays: Vec<Delays>,
    cpu: PhaseCpu,
    load_avg: String,
}

/// Watch delays seen by the watcher on one server.
struct Delays {
    /// Sorted: just before the create was sent → the watcher read its event.
    sent_to_event: Vec<Duration>,
    /// Sorted: the create's reply → the event (zero when the event came first).
    reply_to_event: Vec<Duration>,
    /// Events read before the create's reply arrived.
    before_reply: usize,
    missed: usize,
}

/// CPU used during a phase by its servers, by this benchmark, by Postgres, and by everything else.
struct PhaseCpu {
    wall: Duration,
    servers: Duration,
    bench: Duration,
    /// Every `postgres` process alive at the end of the phase (all databases: other users of the
    /// same Postgres count too).
    postgres: Duration,
    others: Duration,
}

struct PhaseMeter {
    stats: Vec<String>,
    started: Instant,
    before: [Duration; 3],
    postgres_before: BTreeMap<u32, Duration>,
}

/// CPU time of every process named `postgres`, by PID.
fn postgres_cpu() -> BTreeMap<u32, Duration> {
    let mut found = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return found };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let is_postgres = std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres");
        if is_postgres && let Ok(cpu) = cpu_of(&format!("/proc/{pid}/stat")) {
            found.insert(pid, cpu);
        }
    }
    found
}

impl PhaseMeter {
    fn read(stats: &[String]) -> Result<[Duration; 3]> {
        let mut servers = Duration::ZERO;
        for stat in stats {
            servers += cpu_of(stat)?;
        }
        Ok([servers, cpu_of("/proc/self/stat")?, machine_cpu()?])
    }

    fn start(servers: &[Server]) -> Result<Self> {
        let stats: Vec<String> = servers.iter().map(|s| format!("/proc/{}/stat", s.pid)).collect();
        Ok(Self { before: Self::read(&stats)?, postgres_before: postgres_cpu(), stats, started: Instant::now() })
    }

    fn stop(self) -> Result<PhaseCpu> {
        let [servers, bench, machine] = Self::read(&self.stats)?;
        let servers = servers.saturating_sub(self.before[0]);
        let bench = bench.saturating_sub(self.before[1]);
        let postgres: Duration = postgres_cpu()
            .into_iter()
            .map(|(pid, cpu)| cpu.saturating_sub(self.postgres_before.get(&pid).copied().unwrap_or_default()))
            .sum();
        let others = machine.saturating_sub(self.before[2]).saturating_sub(servers + bench + postgres);
        Ok(PhaseCpu { wall: self.started.elapsed(), servers, bench, postgres, others })
    }
}

pub async fn run(args: DatastoreArgs) -> Result<()> {
    if [args.objects, args.clients, args.watch_samples, args.servers, args.rounds].contains(&0) {
        bail!("every count must be at least 1");
    }
    if !args.postgres.starts_with("postgres://") && !args.postgres.starts_with("postgresql://") {
        bail!("--postgres: expected a postgres://USER[:PASSWORD]@HOST[:PORT]/DB URL");
    }
    // Shown with the password redacted.
    let shown = wharf_control::store::Datastore::parse(&args.postgres)
        .map_err(|e| anyhow::anyhow!("--postgres {e}"))?
        .to_string();
    let postgres_version = {
        let mut conn = sqlx::PgConnection::connect(&args.postgres)
            .await
            .with_context(|| format!("cannot connect to Postgres at {shown}"))?;
        let version: String = sqlx::query_scalar("SHOW server_version").fetch_one(&mut conn).await?;
        conn.close().await?;
        version
    };
    let base = bench_dir(args.dir.clone())?;
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let mut problems = Vec::new();

    let mut outcomes = Vec::new();
    for round in 1..=args.rounds {
        for (i, (backend, servers)) in
            [(Backend::Sqlite, 1), (Backend::Postgres, 1), (Backend::Postgres, args.servers)].into_iter().enumerate()
        {
            let dir = base.path().join(format!("round-{round}-phase-{i}"));
            let outcome = phase(&exe, &dir, round, backend, servers, &args, &mut problems).await;
            outcomes.push(outcome.with_context(|| phase_label(round, backend, servers, &args))?);
        }
    }

    let report = render(&args, &shown, &postgres_version, base.path(), &outcomes, &problems);
    super::publish(&report, args.out.as_deref(), "the servers misbehaved", &problems)
}

/// "Postgres, 3 servers", with the round when there are several.
fn phase_label(round: usize, backend: Backend, servers: usize, args: &DatastoreArgs) -> String {
    let plural = if servers == 1 { "" } else { "s" };
    let label = format!("{}, {servers} server{plural}", backend.name());
    if args.rounds > 1 { format!("{label}, round {round}") } else { label }
}

/// One phase: a fresh database (Postgres), its servers, the measures; then the servers stopped
/// and the database dropped, whatever happened.
async fn phase(
    exe: &Path,
    dir: &Path,
    round: usize,
    backend: Backend,
    servers: usize,
    args: &DatastoreArgs,
    problems: &mut Vec<String>,
) -> Result<Outcome> {
    let label = phase_label(round, backend, servers, args);
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(Database::create(&args.postgres).await?),
    };
    let measured = async {
        let url = database.as_ref().map(|d| d.url.as_str());
        let started = start_servers(exe, dir, url, servers).await?;
        let measured = tokio::time::timeout(PHASE_LIMIT, measure(&label, &started, args, problems))
            .await
            .with_context(|| format!("{label}: did not finish within {PHASE_LIMIT:?}"))
            .and_then(|r| r);
        let ready_after = started.iter().map(|s| s.ready_after).collect();
        // Joined servers first, the one they joined last.
        let mut stopped = Ok(());
        for server in started.into_iter().rev() {
            let result = server.stop().await;
            if stopped.is_ok() {
                stopped = result;
            }
        }
        let (creates, delays, cpu, load_avg) = measured?;
        stopped?;
        Ok::<_, anyhow::Error>(Outcome { round, backend, servers, ready_after, creates, delays, cpu, load_avg })
    }
    .await;
    if let Some(database) = database
        && let Err(e) = database.drop_it(&args.postgres).await
    {
        problems.push(format!("{label}: {e:#}"));
    }
    measured
}

/// Starts `n` servers on `dir/server-<i>`: the first on `datastore` (SQLite in its data dir when
/// `None`), the others joining it.
async fn start_servers(exe: &Path, dir: &Path, datastore: Option<&str>, n: usize) -> Result<Vec<Server>> {
    let mut first = vec!["--no-agent".to_string()];
    if let Some(url) = datastore {
        first.extend(["--datastore".to_string(), url.to_string()]);
    }
    progress(&format!("starting {n} server(s)"));
    let mut servers: Vec<Server> = Vec::new();
    let first_dir = dir.join("server-1");
    servers.push(Server::start_with(exe, &first_dir, &first.iter().map(String::as_str).collect::<Vec<_>>()).await?);
    for i in 2..=n {
        let token_file = first_dir.join("server.token");
        let token = std::fs::read_to_string(&token_file)
            .with_context(|| format!("cannot read the server token {}", token_file.display()))?;
        let url = servers[0].config.cluster_url.to_string().trim_end_matches('/').to_string();
        let flags = ["--no-agent", "--join", &url, "--token", token.trim()];
        servers.push(Server::start_with(exe, &dir.join(format!("server-{i}")), &flags).await?);
    }
    Ok(servers)
}

async fn measure(
    label: &str,
    servers: &[Server],
    args: &DatastoreArgs,
    problems: &mut Vec<String>,
) -> Result<(Creates, Vec<Delays>, PhaseCpu, String)> {
    let namespaces: Api<Namespace> = Api::all(servers[0].client()?);
    for name in [THROUGHPUT_NS, WATCH_NS] {
        let ns = Namespace { metadata: meta(name), ..Default::default() };
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("cannot create namespace {name}"))?;
    }
    for (i, server) in servers.iter().enumerate().skip(1) {
        let namespaces: Api<Namespace> = Api::all(server.client()?);
        let asked = Instant::now();
        while namespaces.get_opt(WATCH_NS).await?.is_none() || namespaces.get_opt(THROUGHPUT_NS).await?.is_none() {
            if asked.elapsed() > VISIBLE_LIMIT {
                bail!("server {} did not show the namespaces created through server 1 within {VISIBLE_LIMIT:?}", i + 1);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_avg = load_avg.split_whitespace().take(3).collect::<Vec<_>>().join(" ");

    let clients: Vec<kube::Client> =
        (0..args.clients).map(|i| servers[i % servers.len()].client()).collect::<Result<_>>()?;
    progress(&format!("{label}: {} clients create {} ConfigMaps", args.clients, count(args.objects)));
    let meter = PhaseMeter::start(servers)?;
    let creates = create_all(&clients, THROUGHPUT_NS, args.objects).await;
    let cpu = meter.stop()?;
    if creates.failed > 0 {
        problems.push(format!("{label}: {} of {} creates failed; the first of them:", creates.failed, args.objects));
    }
    problems.extend(creates.errors.iter().map(|e| format!("{label}: {e}")));

    progress(&format!("{label}: {} creates through server 1, a watcher on each server", args.watch_samples));
    let delays = watch_delays(servers, args.watch_samples).await?;
    for (i, d) in delays.iter().enumerate() {
        if d.missed > 0 {
            problems.push(format!(
                "{label}: the watcher on server {} missed {} of {} events",
                i + 1,
                d.missed,
                args.watch_samples
            ));
        }
    }
    Ok((creates, delays, cpu, load_avg))
}

/// Opens a watch on [`WATCH_NS`] through every server, then creates `samples` ConfigMaps one at a
/// time through server 1, waiting for each one's event at every watcher before the next.
async fn watch_delays(servers: &[Server], samples: usize) -> Result<Vec<Delays>> {
    let mut events = Vec::new();
    let mut readers = Vec::new();
    for server in servers {
        let client = server.client()?;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), WATCH_NS);
        let rv = api.list(&ListParams::default().limit(1)).await?.metadata.resource_version.unwrap_or_default();
        let path =
            format!("/api/v1/namespaces/{WATCH_NS}/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=600");
        let request = http::Request::get(&path).body(Vec::new())?;
        let stream = tokio::time::timeout(REQUEST_LIMIT, client.request_stream(request))
            .await
            .context("a watch got no answer")??;
        let (tx, rx) = mpsc::unbounded_channel();
        readers.push(tokio::spawn(read_events(stream, tx)));
        events.push(rx);
    }

    let api: Api<ConfigMap> = Api::namespaced(servers[0].client()?, WATCH_NS);
    let mut delays: Vec<Delays> = servers
        .iter()
        .map(|_| Delays { sent_to_event: Vec::new(), reply_to_event: Vec::new(), before_reply: 0, missed: 0 })
        .collect();
    let params = PostParams::default();
    for i in 0..samples {
        let config_map = ConfigMap {
            metadata: meta(&format!("wd-{i}")),
            data: Some(BTreeMap::from([("payload".to_string(), "x".repeat(super::PAYLOAD))])),
            ..Default::default()
        };
        let sent = Instant::now();
        tokio::time::timeout(REQUEST_LIMIT, api.create(&params, &config_map))
            .await
            .with_context(|| format!("POST configmaps wd-{i} got no answer within {REQUEST_LIMIT:?}"))?
            .with_context(|| format!("POST configmaps wd-{i} failed"))?;
        let replied = Instant::now();
        for (rx, d) in events.iter_mut().zip(&mut delays) {
            match wait_for(rx, i).await {
                Some(at) => {
                    d.sent_to_event.push(at - sent);
                    match at.checked_duration_since(replied) {
                        Some(after) => d.reply_to_event.push(after),
                        None => {
                            d.before_reply += 1;
                            d.reply_to_event.push(Duration::ZERO);
                        }
                    }
                }
                None => d.missed += 1,
            }
        }
    }
    for reader in readers {
        reader.abort();
    }
    for d in &mut delays {
        d.sent_to_event.sort();
        d.reply_to_event.sort();
    }
    Ok(delays)
}

/// The time the event of `wd-{index}` was read, skipping earlier ones (each was already waited
/// for or counted missed); `None` if it did not come within [`EVENT_LIMIT`].
async fn wait_for(rx: &mut mpsc::UnboundedReceiver<(usize, Instant)>, index: usize) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + EVENT_LIMIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((i, at))) if i == index => return Some(at),
            Ok(Some((i, _))) if i < index => continue,
            // A later event first, the stream's end, or the time limit: this one is missing.
            _ => return None,
        }
    }
}

/// Reads a watch stream, sending the index and arrival time of each ADDED `wd-<index>`.
async fn read_events(stream: impl futures::AsyncBufRead, events: mpsc::UnboundedSender<(usize, Instant)>) {
    let mut stream = std::pin::pin!(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match stream.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let at = Instant::now();
        let index = super::added_index(&line, "wd-");
        if let Some(index) = index
            && events.send((index, at)).is_err()
        {
            return;
        }
    }
}

/// A database this benchmark created, and the URL of it.
struct Database {
    name: String,
    url: String,
}

impl Database {
    async fn create(admin_url: &str) -> Result<Self> {
        let random = std::collections::hash_map::RandomState::new().hash_one((std::process::id(), Instant::now()));
        let name = format!("wharf_bench_{random:016x}");
        let url = with_database(admin_url, &name)?;
        let mut conn = sqlx::PgConnection::connect(admin_url).await.context("cannot connect to Postgres")?;
        // The name is ours: lowercase letters, digits and underscores only.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        conn.close().await?;
        progress(&format!("created database {name}"));
        Ok(Self { name, url })
    }

    /// Drops the database (its servers are stopped; `FORCE` ends any session left over).
    async fn drop_it(self, admin_url: &str) -> Result<()> {
        let mut conn = sqlx::PgConnection::connect(admin_url).await.context("cannot connect to Postgres")?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot drop database {}", self.name))?;
        conn.close().await?;
        Ok(())
    }
}

/// `url` with its database (the path) replaced by `name`, keeping user, host, port and query.
fn with_database(url: &str, name: &str) -> Result<String> {
    let scheme = url.find("://").context("a Postgres URL has a scheme")? + 3;
    let rest = &url[scheme..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let query = rest[authority_end..].find('?').map_or("", |q| &rest[authority_end + q..]);
    Ok(format!("{}{}/{name}{query}", &url[..scheme], &rest[..authority_end]))
}

fn render(
    args: &DatastoreArgs,
    postgres: &str,
    postgres_version: &str,
    place: &Path,
    outcomes: &[Outcome],
    problems: &[String],
) -> String {
    let mut out = String::new();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(out, "\nWharf datastore benchmark ({} build)", build());
    let _ = writeln!(
        out,
        "{cpus} CPUs, {} memory; Postgres {postgres_version} at {postgres} (a fresh database per phase), SQLite \
         in the server's data dir under {}; servers started with --no-agent; clients: kube-rs over HTTPS \
         (HTTP/1.1, one connection per client), in this process, sharing the CPUs with the servers and Postgres. \
         SQLite is one server only (its file belongs to one process): the multi-server rows are Postgres only.\n",
        memory_total(),
        place.display()
    );

    let sqlite_rate = |round: usize| {
        outcomes.iter().find(|o| o.round == round && o.backend == Backend::Sqlite).map(|o| o.creates.rate())
    };
    let _ = writeln!(
        out,
        "Create throughput and latency: {} clients (round-robin over the servers), {} ConfigMaps of 1 KiB\n",
        args.clients,
        count(args.objects)
    );
    let rows: Vec<[String; 6]> = outcomes
        .iter()
        .map(|o| {
            let rate = o.creates.rate();
            [
                phase_label(o.round, o.backend, o.servers, args),
                format!("{} objects/s", thousands(rate)),
                sqlite_rate(o.round).map_or("—".into(), |s| format!("{:.2}×", rate / s)),
                latencies(&o.creates),
                format!("{} / {}", count(o.creates.failed), count(o.creates.ok + o.creates.failed)),
                o.load_avg.clone(),
            ]
        })
        .collect();
    table(&mut out, ["Phase", "Creates/s", "÷ SQLite", "p50 / p99 / max", "failed", "load avg before"], &rows);

    let _ = writeln!(
        out,
        "\nWatch delay: {} creates one at a time through server 1; a watcher on each server; from just \
         before the create is sent to the watcher reading its ADDED event (and from the create's reply)\n",
        count(args.watch_samples)
    );
    let mut rows: Vec<[String; 6]> = Vec::new();
    for o in outcomes {
        for (i, d) in o.delays.iter().enumerate() {
            let watcher = if i == 0 { "server 1 (same server)".to_string() } else { format!("server {}", i + 1) };
            let pct = |v: &[Duration]| {
                format!("{} / {} / {}", ms(percentile(v, 50.0)), ms(percentile(v, 99.0)), ms(percentile(v, 100.0)))
            };
            rows.push([
                phase_label(o.round, o.backend, o.servers, args),
                watcher,
                pct(&d.sent_to_event),
                format!("{} / {}", ms(percentile(&d.reply_to_event, 50.0)), ms(percentile(&d.reply_to_event, 99.0))),
                count(d.before_reply),
                format!("{} / {}", count(d.sent_to_event.len()), count(d.sent_to_event.len() + d.missed)),
            ]);
        }
    }
    table(
        &mut out,
        [
            "Phase",
            "Watcher on",
            "sent → event p50 / p99 / max",
            "reply → event p50 / p99",
            "events before the reply",
            "delivered",
        ],
        &rows,
    );

    let _ = writeln!(
        out,
        "\nServers and CPU of the throughput phase (servers: all of the phase's; Postgres: every postgres process, \
         whoever its client; other processes: the rest of the machine, e.g. other builds)\n"
    );
    let rows: Vec<[String; 7]> = outcomes
        .iter()
        .map(|o| {
            let c = &o.cpu;
            let share = |d: Duration| {
                format!("{} ({:.0}% of one CPU)", secs(d), 100.0 * d.as_secs_f64() / c.wall.as_secs_f64())
            };
            [
                phase_label(o.round, o.backend, o.servers, args),
                o.ready_after.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", "),
                secs(c.wall),
                share(c.servers),
                share(c.bench),
                share(c.postgres),
                share(c.others),
            ]
        })
        .collect();
    table(
        &mut out,
        ["Phase", "spawn → /readyz", "wall", "servers CPU", "benchmark CPU", "Postgres CPU", "other processes CPU"],
        &rows,
    );
    problems_section(&mut out, problems);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_replaced_in_url() {
        let u = |url| with_database(url, "wharf_bench_1").unwrap();
        assert_eq!(
            u("postgres://wharf:wharf@127.0.0.1:5432/postgres"),
            "postgres://wharf:wharf@127.0.0.1:5432/wharf_bench_1"
        );
        assert_eq!(u("postgres://h"), "postgres://h/wharf_bench_1");
        assert_eq!(u("postgresql://u@h/db?sslmode=disable"), "postgresql://u@h/wharf_bench_1?sslmode=disable");
        assert_eq!(u("postgres://u@h?sslmode=disable"), "postgres://u@h/wharf_bench_1?sslmode=disable");
    }
}
