//! Overload: 200 watchers (all namespaces and single namespaces, with and without label
//! selectors) follow ConfigMaps while a writer creates, updates and deletes them at 500 writes/s
//! for 60 s over several connections. Every watcher must receive exactly the events its
//! namespace and selector give it from the writer's acknowledged history — in resourceVersion
//! order, none missing, none twice, objects entering and leaving a selector as ADDED and DELETED
//! — and the server's resident memory must stay bounded. Latencies and rates are printed, not
//! asserted.

mod common;
#[path = "common/history.rs"]
mod history;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Cluster;
use futures::{AsyncBufReadExt, StreamExt};
use history::{Op, OpKind, Outcome, Rng, rev_of};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

const NAMESPACES: usize = 4;
/// 200 watchers, or `OVERLOAD_WATCHERS` (to measure the writer alone, say).
fn watcher_count() -> usize {
    std::env::var("OVERLOAD_WATCHERS").ok().and_then(|s| s.parse().ok()).unwrap_or(200)
}
const RATE: f64 = 500.0;
/// How long the writer writes: 60 s, or `OVERLOAD_SECONDS` for a shorter look (e.g. under perf).
fn write_for() -> Duration {
    Duration::from_secs(std::env::var("OVERLOAD_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60))
}
/// Writer tasks (each owns its objects and writes them one request at a time) and the kube
/// clients (connection pools) they share.
const WRITERS: usize = 25;
const WRITER_CLIENTS: usize = 5;
/// Objects each writer keeps at most, so the live set (and the server's memory) levels off.
const LIVE_PER_WRITER: usize = 40;
/// How much the server's peak RSS in the last 20 s may exceed its peak in the first 20 s. Once
/// the watch window (`WATCH_WINDOW` events) and the capped live set are full the server holds a
/// constant amount of data; the slack covers allocator fragmentation and buffers,
/// while a leak per event or per watcher delivery (30,000 writes, 1.5 million deliveries) would
/// grow far past it.
const RSS_GROWTH_LIMIT: f64 = 0.30;
/// The server's watch window for this test (`--watch-window`).
const WATCH_WINDOW: usize = 2_000;

fn namespace(i: usize) -> String {
    format!("ov-{i}")
}

/// A label selector of the forms the watchers use: `key=value` and `key in (v1,v2)`.
#[derive(Clone, Debug)]
struct Selector {
    text: String,
    terms: Vec<(String, Vec<String>)>,
}

impl Selector {
    fn everything() -> Self {
        Self { text: String::new(), terms: Vec::new() }
    }

    fn equals(key: &str, value: &str) -> Self {
        Self { text: format!("{key}={value}"), terms: vec![(key.into(), vec![value.into()])] }
    }

    fn one_of(key: &str, values: &[&str]) -> Self {
        Self {
            text: format!("{key} in ({})", values.join(",")),
            terms: vec![(key.into(), values.iter().map(|v| v.to_string()).collect())],
        }
    }

    fn matches(&self, labels: &[(String, String)]) -> bool {
        self.terms.iter().all(|(key, allowed)| labels.iter().any(|(k, v)| k == key && allowed.contains(v)))
    }
}

/// What one watcher follows.
#[derive(Clone, Debug)]
struct Watch {
    namespace: Option<String>,
    selector: Selector,
}

fn watches() -> Vec<Watch> {
    (0..watcher_count())
        .map(|i| {
            let ns = Some(namespace(i % NAMESPACES));
            match i % 10 {
                0 => Watch { namespace: None, selector: Selector::everything() },
                1 => Watch { namespace: None, selector: Selector::equals("tier", "a") },
                2..=4 => Watch { namespace: ns, selector: Selector::everything() },
                5..=7 => Watch { namespace: ns, selector: Selector::equals("tier", "a") },
                _ => Watch { namespace: ns, selector: Selector::one_of("shard", &["0", "1"]) },
            }
        })
        .collect()
}

/// A received event: resourceVersion, type, when it arrived.
type Received = (i64, &'static str, Instant);

/// The type, object name and resourceVersion of a watch event line. The test process shares
/// two cores with the server, so it reads the three fields by searching the line instead of
/// decoding 1.8 million events with serde; the first `"name"` of a ConfigMap line is its
/// metadata's (the server writes `apiVersion`, `kind`, `metadata` first) and a ConfigMap has
/// one `"resourceVersion"`. BOOKMARK lines have no name.
fn parse_event(line: &str) -> Option<(&str, &str, i64)> {
    fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
        let start = line.find(key)? + key.len();
        let end = start + line[start..].find('"')?;
        Some(&line[start..end])
    }
    let kind = field(line, "{\"type\":\"")?;
    let rev = field(line, "\"resourceVersion\":\"")?.parse().ok()?;
    let name = field(line, "\"name\":\"").unwrap_or_default();
    Some((kind, name, rev))
}

/// One watcher: a raw watch stream, each event's revision, type and arrival time recorded.
async fn watcher(
    client: kube::Client,
    watch: Watch,
    from: i64,
    out: Arc<Mutex<Vec<Received>>>,
    ignored: Arc<Mutex<usize>>,
) {
    let path = match &watch.namespace {
        Some(ns) => format!("/api/v1/namespaces/{ns}/configmaps"),
        None => "/api/v1/configmaps".to_string(),
    };
    let mut query =
        form_urlencoded(&[("watch", "true"), ("resourceVersion", &from.to_string()), ("timeoutSeconds", "600")]);
    if !watch.selector.text.is_empty() {
        query.push_str(&format!("&labelSelector={}", encode(&watch.selector.text)));
    }
    let request = http::Request::get(format!("{path}?{query}")).body(Vec::new()).expect("a request");
    let stream = client.request_stream(request).await.expect("the watch starts");
    let mut lines = stream.lines();
    while let Some(line) = lines.next().await {
        let Ok(line) = line else { return };
        let at = Instant::now();
        let (kind, name, rev) = parse_event(&line).unwrap_or_else(|| panic!("watch {watch:?} got {line}"));
        let kind = match kind {
            "ADDED" => "ADDED",
            "MODIFIED" => "MODIFIED",
            "DELETED" => "DELETED",
            "BOOKMARK" => continue,
            other => panic!("watch {watch:?} got {other}: {line}"),
        };
        if !name.starts_with('w') {
            *ignored.lock().unwrap() += 1;
            continue;
        }
        out.lock().unwrap().push((rev, kind, at));
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&")
}

fn labels(tier: &str, shard: usize) -> Vec<(String, String)> {
    vec![("tier".to_string(), tier.to_string()), ("shard".to_string(), shard.to_string())]
}

fn config_map(name: &str, id: &str, labels: &[(String, String)], rev: Option<i64>) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    cm.metadata.labels = Some(labels.iter().cloned().collect::<BTreeMap<_, _>>());
    cm.metadata.resource_version = rev.map(|r| r.to_string());
    cm.data = Some(BTreeMap::from([("op".to_string(), id.to_string())]));
    cm
}

/// An object a writer owns: name, namespace, labels, resourceVersion, content id.
type Owned = (String, String, Vec<(String, String)>, i64, String);

/// One writer task: its share of the rate, paced against a fixed schedule (it catches up when
/// late rather than skipping), on objects it alone writes.
async fn writer(index: usize, client: kube::Client, start: Instant, history: Arc<Mutex<Vec<Op>>>) {
    let interval = Duration::from_secs_f64(WRITERS as f64 / RATE);
    let offset = interval.mul_f64(index as f64 / WRITERS as f64);
    let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (index as u64 + 1));
    let mut live: Vec<Owned> = Vec::new();
    let mut created = 0;
    for seq in 0u32.. {
        let due = start + offset + interval * seq;
        // Writing stops after the period even when the server could not keep the rate: the
        // achieved rate is what the test reports.
        if due >= start + write_for() || Instant::now() >= start + write_for() {
            return;
        }
        tokio::time::sleep_until(due.into()).await;
        let id = format!("w{index}-op{seq}");
        let roll = rng.below(20);
        let kind = if live.is_empty() || (roll < 10 && live.len() < LIVE_PER_WRITER) {
            OpKind::Create
        } else if (10..17).contains(&roll) {
            OpKind::Update
        } else {
            OpKind::Delete
        };
        let op_start = Instant::now();
        let (ns, name, op_labels, op_id, result) = match kind {
            OpKind::Create => {
                let name = format!("w{index}-{created}");
                created += 1;
                let ns = namespace(rng.below(NAMESPACES));
                let tier = if rng.below(2) == 0 { "a" } else { "b" };
                let labels = labels(tier, rng.below(4));
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
                let result = api.create(&PostParams::default(), &config_map(&name, &id, &labels, None)).await;
                (ns, name, labels, id.clone(), result.map(|cm| rev_of(&cm)))
            }
            OpKind::Update => {
                let (name, ns, mut labels, rev, _) = live[rng.below(live.len())].clone();
                // Half the updates move the object across the `tier=a` selector.
                if rng.below(2) == 0 {
                    labels[0].1 = if labels[0].1 == "a" { "b".into() } else { "a".into() };
                }
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
                let result =
                    api.replace(&name, &PostParams::default(), &config_map(&name, &id, &labels, Some(rev))).await;
                (ns, name, labels, id.clone(), result.map(|cm| rev_of(&cm)))
            }
            OpKind::Delete => {
                let (name, ns, labels, _, content) = live[rng.below(live.len())].clone();
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
                let result = api.delete(&name, &DeleteParams::default()).await;
                let rev = result
                    .map(|either| rev_of(&either.left().expect("a ConfigMap's delete answers the deleted object")));
                (ns, name, labels, content, rev)
            }
        };
        let end = Instant::now();
        let outcome = match &result {
            Ok(rev) => Outcome::Acked(*rev),
            Err(e) => history::classify(e),
        };
        let position = live.iter().position(|(n, ..)| *n == name);
        match (&outcome, kind) {
            (Outcome::Acked(rev), OpKind::Create | OpKind::Update) => {
                let entry = (name.clone(), ns.clone(), op_labels.clone(), *rev, op_id.clone());
                match position {
                    Some(i) => live[i] = entry,
                    None => live.push(entry),
                }
            }
            (Outcome::Acked(_), OpKind::Delete) | (Outcome::Unknown(_), _) => {
                if let Some(i) = position {
                    live.swap_remove(i);
                }
            }
            (Outcome::Failed(_), _) => {}
        }
        history.lock().unwrap().push(Op {
            kind,
            namespace: ns,
            name,
            id: op_id,
            labels: op_labels,
            start: op_start,
            end,
            outcome,
        });
    }
}

/// The events a watcher must see, from the acknowledged writes in revision order: Kubernetes'
/// rules for a selector (an object entering it is ADDED, leaving it DELETED).
fn expected(watch: &Watch, acked: &[(&Op, i64)]) -> Vec<(i64, &'static str)> {
    let mut before: HashMap<(&str, &str), &[(String, String)]> = HashMap::new();
    let mut out = Vec::new();
    for (op, rev) in acked {
        let key = (op.namespace.as_str(), op.name.as_str());
        let previous = before.get(&key).map(|l| watch.selector.matches(l));
        match op.kind {
            OpKind::Delete => {
                before.remove(&key);
            }
            _ => {
                before.insert(key, &op.labels);
            }
        }
        if watch.namespace.as_ref().is_some_and(|ns| *ns != op.namespace) {
            continue;
        }
        let now = watch.selector.matches(&op.labels);
        let kind = match (op.kind, previous, now) {
            (OpKind::Create, _, true) => Some("ADDED"),
            (OpKind::Update, Some(true), true) => Some("MODIFIED"),
            (OpKind::Update, Some(false), true) => Some("ADDED"),
            (OpKind::Update, Some(true), false) => Some("DELETED"),
            (OpKind::Delete, _, true) => Some("DELETED"),
            _ => None,
        };
        if let Some(kind) = kind {
            out.push((*rev, kind));
        }
    }
    out
}

/// The first difference between what a watcher should have received and what it did.
fn compare(want: &[(i64, &'static str)], got: &[Received]) -> Option<String> {
    if let Some(w) = got.windows(2).find(|w| w[0].0 >= w[1].0) {
        return Some(format!("resourceVersion {} arrived after {} (out of order or twice)", w[1].0, w[0].0));
    }
    for (i, (rev, kind)) in want.iter().enumerate() {
        match got.get(i) {
            None => {
                return Some(format!(
                    "{} of {} events arrived; missing from resourceVersion {rev}",
                    got.len(),
                    want.len()
                ));
            }
            Some((r, k, _)) if r == rev && k == kind => {}
            Some((r, k, _)) => return Some(format!("event {i}: expected {kind} @{rev}, got {k} @{r}")),
        }
    }
    (got.len() > want.len()).then(|| format!("{} unexpected events after the last expected", got.len() - want.len()))
}

/// CPU time (user + system) a process has used so far, from /proc/PID/stat.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map(|f| f.iter().filter_map(|t| t.parse::<f64>().ok()).sum()).unwrap_or(0.0);
    ticks / 100.0
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_watchers_miss_nothing_at_500_writes_per_second() {
    let test_start = Instant::now();
    // A watch window of 2,000 events (4 s at 500 writes/s) fills early in the run, so memory
    // should level off once the capped live set is reached.
    let cluster = Cluster::start_with(&["--no-agent", "--watch-window", &WATCH_WINDOW.to_string()]);
    for i in 0..NAMESPACES {
        cluster.ok(&["create", "namespace", &namespace(i)]);
    }
    let admin: Api<ConfigMap> = Api::all(cluster.client().await);
    let from: i64 = admin
        .list(&ListParams::default().limit(1))
        .await
        .expect("list")
        .metadata
        .resource_version
        .and_then(|r| r.parse().ok())
        .expect("a list resourceVersion");

    // Watchers over 10 connection pools (HTTP/1.1: a connection per watch).
    let specs = watches();
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(cluster.client().await);
    }
    let ignored = Arc::new(Mutex::new(0usize));
    let received: Vec<Arc<Mutex<Vec<Received>>>> = specs.iter().map(|_| Arc::default()).collect();
    let watchers: Vec<_> = specs
        .iter()
        .enumerate()
        .map(|(i, w)| {
            tokio::spawn(watcher(
                clients[i % clients.len()].clone(),
                w.clone(),
                from,
                received[i].clone(),
                ignored.clone(),
            ))
        })
        .collect();

    // The server's memory, once a second, from a thread of its own.
    let pid = cluster.pid();
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while sampling.load(Ordering::SeqCst) {
                if let Some(kib) = rss_kib(pid) {
                    samples.push(kib);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            samples
        })
    };

    let history: Arc<Mutex<Vec<Op>>> = Arc::default();
    let mut write_clients = Vec::new();
    for _ in 0..WRITER_CLIENTS {
        write_clients.push(cluster.client().await);
    }
    let start = Instant::now() + Duration::from_millis(200);
    let cpu_before = (cpu_seconds(&pid.to_string()), cpu_seconds("self"));
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| tokio::spawn(writer(i, write_clients[i % WRITER_CLIENTS].clone(), start, history.clone())))
        .collect();
    for w in writers {
        w.await.expect("a writer finishes");
    }
    let wrote_for = start.elapsed();
    let cpu = (cpu_seconds(&pid.to_string()) - cpu_before.0, cpu_seconds("self") - cpu_before.1);
    sampling.store(false, Ordering::SeqCst);
    let rss = sampler.join().expect("the sampler finishes");

    let ops = std::mem::take(&mut *history.lock().unwrap());
    let mut acked: Vec<(&Op, i64)> = ops.iter().filter_map(|o| o.acked_rev().map(|r| (o, r))).collect();
    acked.sort_by_key(|(_, r)| *r);
    let wants: Vec<Vec<(i64, &'static str)>> = specs.iter().map(|w| expected(w, &acked)).collect();

    // Let the watchers drain (bounded), then stop them.
    let draining = Instant::now();
    while draining.elapsed() < Duration::from_secs(20)
        && received.iter().zip(&wants).any(|(got, want)| got.lock().unwrap().len() < want.len())
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = draining.elapsed();
    for w in &watchers {
        w.abort();
    }

    // Figures.
    let ack_at: HashMap<i64, Instant> = ops.iter().filter_map(|o| o.acked_rev().map(|r| (r, o.end))).collect();
    let mut latencies: Vec<Duration> = ops.iter().map(|o| o.end - o.start).collect();
    let mut delays = Vec::new();
    let mut early = 0usize;
    let mut failures = Vec::new();
    let mut deliveries = 0usize;
    for (i, (got, want)) in received.iter().zip(&wants).enumerate() {
        let got = got.lock().unwrap();
        deliveries += got.len();
        for (rev, _, at) in got.iter() {
            if let Some(acked_at) = ack_at.get(rev) {
                match at.checked_duration_since(*acked_at) {
                    Some(d) => delays.push(d),
                    None => {
                        early += 1;
                        delays.push(Duration::ZERO);
                    }
                }
            }
        }
        if let Some(problem) = compare(want, &got) {
            failures.push(format!("watcher {i} {:?}: {problem}", specs[i]));
        }
    }
    let not_acked: Vec<&Op> = ops.iter().filter(|o| o.acked_rev().is_none()).collect();
    let achieved = acked.len() as f64 / wrote_for.as_secs_f64();
    let first: u64 = rss.iter().take(20).copied().max().unwrap_or(0);
    let last: u64 = rss.iter().rev().take(20).copied().max().unwrap_or(0);
    let peak = rss.iter().copied().max().unwrap_or(0);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let counts = |kind: OpKind| acked.iter().filter(|(o, _)| o.kind == kind).count();
    println!(
        "overload: {} writes acknowledged in {wrote_for:.1?} = {achieved:.0} writes/s (target {RATE}); creates {}, \
         updates {}, deletes {}; not acknowledged {}",
        acked.len(),
        counts(OpKind::Create),
        counts(OpKind::Update),
        counts(OpKind::Delete),
        not_acked.len()
    );
    println!("overload: write latency {}", history::summary(&mut latencies));
    println!(
        "overload: delivery delay (receive − ack) {}; {early} events arrived before their write's reply",
        history::summary(&mut delays)
    );
    println!(
        "overload: {} watchers got {deliveries} events ({} expected), drained {drain:.1?} after the writer; \
         {} events of other ConfigMaps ignored",
        specs.len(),
        wants.iter().map(Vec::len).sum::<usize>(),
        ignored.lock().unwrap()
    );
    println!(
        "overload: server RSS start {:.1} MiB, peak {:.1} MiB, end {:.1} MiB; max of the first 20 s {:.1} MiB, of \
         the last 20 s {:.1} MiB ({:+.1}%, limit +{:.0}%); {} samples",
        mib(rss.first().copied().unwrap_or(0)),
        mib(peak),
        mib(rss.last().copied().unwrap_or(0)),
        mib(first),
        mib(last),
        (last as f64 / first.max(1) as f64 - 1.0) * 100.0,
        RSS_GROWTH_LIMIT * 100.0,
        rss.len()
    );
    println!("overload: RSS series (MiB, 1/s): {:?}", rss.iter().map(|k| mib(*k) as u32).collect::<Vec<_>>());
    println!(
        "overload: CPU while writing: server {:.2} cores, this test's clients {:.2} cores (of {} on the machine)",
        cpu.0 / wrote_for.as_secs_f64(),
        cpu.1 / wrote_for.as_secs_f64(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("overload: test wall time {:.1?}", test_start.elapsed());

    assert!(
        not_acked.is_empty(),
        "{} writes were not acknowledged, e.g. {:?}",
        not_acked.len(),
        not_acked.iter().take(3).map(|o| (&o.name, &o.outcome)).collect::<Vec<_>>()
    );
    assert!(
        failures.is_empty(),
        "{} watchers missed or misordered events:\n{}",
        failures.len(),
        failures.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        (last as f64) <= first as f64 * (1.0 + RSS_GROWTH_LIMIT),
        "the server's RSS grew from a first-20-s peak of {:.1} MiB to a last-20-s peak of {:.1} MiB",
        mib(first),
        mib(last)
    );
}
