//! Jobs and CronJobs end to end with the real kubectl: Wasm pods run to completion (the "hello"
//! fixture exits 0, "crasher" exits 1), Jobs complete within their parallelism, fail at their
//! backoffLimit, run Indexed pods that see their index, go after their TTL; a CronJob every
//! minute creates Jobs and prunes its history, and `kubectl create job --from=cronjob/...` works.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufReader;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, kubectl_path, wasm_fixture};
use serde_json::Value;

fn job(name: &str, image: &str, spec: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n{spec}  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: main\n        image: {image}\n"
    )
}

fn json(cluster: &Cluster, args: &[&str]) -> Value {
    serde_json::from_str(&cluster.ok(args)).expect("kubectl prints JSON")
}

/// Events about `name` (any kind), as (reason, message).
fn events_of(cluster: &Cluster, name: &str) -> Vec<(String, String)> {
    let events = json(cluster, &["get", "events", "-o", "json"]);
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == name)
        .map(|e| (e["reason"].as_str().unwrap_or("").into(), e["message"].as_str().unwrap_or("").into()))
        .collect()
}

/// Watches the pods of Job `job` with `kubectl get pods -w` and records the most that were
/// active (neither finished nor being deleted) at once.
struct ActiveWatch {
    child: std::process::Child,
    most: Arc<Mutex<usize>>,
}

impl ActiveWatch {
    fn start(cluster: &Cluster, job: &str) -> Self {
        let mut child = Command::new(kubectl_path())
            .args(["get", "pods", "-l", &format!("job-name={job}"), "--watch", "-o", "json"])
            .env("KUBECONFIG", cluster.kubeconfig())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl watch runs");
        let stdout = child.stdout.take().expect("stdout piped");
        let most = Arc::new(Mutex::new(0));
        let seen = most.clone();
        std::thread::spawn(move || {
            let mut active: BTreeMap<String, bool> = BTreeMap::new();
            for pod in serde_json::Deserializer::from_reader(BufReader::new(stdout)).into_iter::<Value>() {
                let Ok(pod) = pod else { break };
                let phase = pod["status"]["phase"].as_str().unwrap_or("");
                let is_active =
                    !matches!(phase, "Succeeded" | "Failed") && pod["metadata"]["deletionTimestamp"].is_null();
                active.insert(pod["metadata"]["name"].as_str().unwrap_or("").into(), is_active);
                let now = active.values().filter(|a| **a).count();
                let mut most = seen.lock().unwrap();
                *most = (*most).max(now);
            }
        });
        ActiveWatch { child, most }
    }

    fn most(&mut self) -> usize {
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self.most.lock().unwrap()
    }
}

#[test]
fn jobs_complete_within_parallelism_fail_at_backoff_limit_and_run_indexed_pods() {
    let cluster = Cluster::start();
    cluster.import(&wasm_fixture(cluster.data_dir(), "hello"), "hello:v1");
    cluster.import(&wasm_fixture(cluster.data_dir(), "crasher"), "crasher:v1");
    cluster.import(&wasm_fixture(cluster.data_dir(), "ticker"), "ticker:v1");
    let started = Instant::now();
    let mut watch = ActiveWatch::start(&cluster, "three");
    cluster.apply(&job("three", "hello:v1", "  completions: 3\n  parallelism: 2\n"));
    cluster.apply(&job("crash", "crasher:v1", "  backoffLimit: 1\n"));
    cluster.apply(&job("indexed", "hello:v1", "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n"));
    cluster.apply(&job("short-lived", "hello:v1", "  ttlSecondsAfterFinished: 2\n"));
    cluster.apply(&job("endless", "ticker:v1", "  activeDeadlineSeconds: 3\n"));
    cluster.apply(&job("paused", "hello:v1", "  suspend: true\n"));

    // completions 3, parallelism 2: completes with 3 successes, never more than 2 pods at once.
    cluster.ok(&["wait", "--for=condition=complete", "job/three", "--timeout=90s"]);
    println!("job three complete after {:?}", started.elapsed());
    let three = json(&cluster, &["get", "job", "three", "-o", "json"]);
    assert_eq!(three["status"]["succeeded"], 3, "{:#}", three["status"]);
    assert!(three["status"]["completionTime"].is_string() && three["status"]["startTime"].is_string());
    let pods = json(&cluster, &["get", "pods", "-l", "job-name=three", "-o", "json"]);
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 3, "one pod per completion");
    for pod in pods {
        let labels = &pod["metadata"]["labels"];
        assert_eq!(labels["batch.kubernetes.io/job-name"], "three");
        assert_eq!(labels["controller-uid"], three["metadata"]["uid"]);
        assert_eq!(pod["status"]["phase"], "Succeeded");
    }
    let most = watch.most();
    assert!((1..=2).contains(&most), "at most parallelism (2) pods were active at once, saw {most}");
    let events = events_of(&cluster, "three");
    assert_eq!(
        events.iter().filter(|(r, m)| r == "SuccessfulCreate" && m.starts_with("Created pod: three-")).count(),
        3
    );
    assert!(events.contains(&("Completed".into(), "Job completed".into())), "{events:?}");
    let listed = cluster.ok(&["get", "job", "three"]);
    assert!(listed.contains("Complete") && listed.contains("3/3"), "{listed}");

    // A crashing Job: its pod fails, is replaced after the back-off, fails again and the Job stops.
    cluster.ok(&["wait", "--for=condition=failed", "job/crash", "--timeout=90s"]);
    println!("job crash failed after {:?}", started.elapsed());
    let crash = json(&cluster, &["get", "job", "crash", "-o", "json"]);
    let failed = crash["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Failed").cloned();
    let failed = failed.expect("a Failed condition");
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    assert_eq!(crash["status"]["failed"], 2, "backoffLimit 1 allows one retry: {:#}", crash["status"]);
    assert!(crash["status"]["succeeded"].is_null() && crash["status"]["completionTime"].is_null());
    let crash_pods = cluster.ok(&["get", "pods", "-l", "job-name=crash", "--no-headers"]);
    assert_eq!(crash_pods.lines().count(), 2, "{crash_pods}");
    assert!(
        events_of(&cluster, "crash")
            .contains(&("BackoffLimitExceeded".into(), "Job has reached the specified backoff limit".into()))
    );

    // Indexed: each pod has its index in its name, annotation, hostname and JOB_COMPLETION_INDEX.
    cluster.ok(&["wait", "--for=condition=complete", "job/indexed", "--timeout=60s"]);
    let indexed = json(&cluster, &["get", "job", "indexed", "-o", "json"]);
    assert_eq!(indexed["status"]["completedIndexes"], "0-2");
    let pods = json(&cluster, &["get", "pods", "-l", "job-name=indexed", "-o", "json"]);
    let mut indexes = BTreeSet::new();
    for pod in pods["items"].as_array().unwrap() {
        let name = pod["metadata"]["name"].as_str().unwrap();
        let index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"].as_str().unwrap();
        assert_eq!(pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"], index);
        assert!(name.starts_with(&format!("indexed-{index}-")), "{name}");
        assert_eq!(pod["spec"]["hostname"], format!("indexed-{index}"));
        let logs = cluster.ok(&["logs", name]);
        assert!(logs.contains(&format!("env: JOB_COMPLETION_INDEX={index}\n")), "{name}: {logs}");
        indexes.insert(index.to_string());
    }
    assert_eq!(indexes, BTreeSet::from(["0".into(), "1".into(), "2".into()]));

    // activeDeadlineSeconds: a pod that never ends fails its Job, and is stopped.
    cluster.ok(&["wait", "--for=condition=failed", "job/endless", "--timeout=30s"]);
    let endless = json(&cluster, &["get", "job", "endless", "-o", "json"]);
    let reasons: Vec<&Value> =
        endless["status"]["conditions"].as_array().unwrap().iter().map(|c| &c["reason"]).collect();
    assert!(reasons.contains(&&Value::from("DeadlineExceeded")), "{:#}", endless["status"]);
    let stopped = cluster.eventually(Duration::from_secs(30), || {
        let pods = json(&cluster, &["get", "pods", "-l", "job-name=endless", "-o", "json"]);
        pods["items"].as_array().unwrap().iter().all(|p| p["status"]["phase"] != "Running")
    });
    assert!(stopped, "the deadline-exceeded job's pod was not stopped");

    // suspend: no pods until it is resumed, then it runs to completion.
    let paused = json(&cluster, &["get", "job", "paused", "-o", "json"]);
    let suspended = paused["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Suspended");
    assert!(suspended, "{:#}", paused["status"]);
    assert_eq!(cluster.ok(&["get", "pods", "-l", "job-name=paused", "-o", "name"]), "");
    cluster.ok(&["patch", "job", "paused", "--type=merge", "-p", r#"{"spec":{"suspend":false}}"#]);
    cluster.ok(&["wait", "--for=condition=complete", "job/paused", "--timeout=60s"]);

    // ttlSecondsAfterFinished: the finished Job goes by itself.
    let gone = cluster.eventually(Duration::from_secs(30), || {
        let out = cluster.kubectl(&["get", "job", "short-lived"]);
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound")
    });
    assert!(gone, "job short-lived was not deleted after its TTL");
    println!("all job checks done after {:?}", started.elapsed());
}

#[test]
fn a_cron_job_every_minute_creates_jobs_and_prunes_its_history() {
    let cluster = Cluster::start();
    cluster.import(&wasm_fixture(cluster.data_dir(), "hello"), "hello:v1");
    let started = Instant::now();
    cluster.apply(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: tick\nspec:\n  schedule: \"*/1 * * * *\"\n  timeZone: Europe/Berlin\n  successfulJobsHistoryLimit: 1\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n          - name: main\n            image: hello:v1\n",
    );
    let listed = cluster.ok(&["get", "cronjob", "tick"]);
    assert!(listed.contains("*/1 * * * *") && listed.contains("Europe/Berlin"), "{listed}");

    // A manual run from the CronJob's template.
    let created = cluster.ok(&["create", "job", "manual", "--from=cronjob/tick"]);
    assert!(created.contains("job.batch/manual created"), "{created}");
    cluster.ok(&["wait", "--for=condition=complete", "job/manual", "--timeout=60s"]);
    let manual = json(&cluster, &["get", "job", "manual", "-o", "json"]);
    assert_eq!(manual["metadata"]["ownerReferences"][0]["name"], "tick");
    assert_eq!(manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"], "manual");

    // Scheduled runs: wait for two, the second finished and the first pruned.
    let mut scheduled: BTreeSet<String> = BTreeSet::new();
    let pruned = cluster.eventually(Duration::from_secs(150), || {
        let jobs = json(&cluster, &["get", "jobs", "-o", "json"]);
        let current: Vec<&Value> = jobs["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["metadata"]["name"].as_str().unwrap().starts_with("tick-"))
            .collect();
        scheduled.extend(current.iter().map(|j| j["metadata"]["name"].as_str().unwrap().to_string()));
        let complete =
            |j: &Value| j["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Complete");
        scheduled.len() >= 2 && current.len() == 1 && complete(current[0])
    });
    assert!(pruned, "never saw two scheduled jobs with the older one pruned; saw {scheduled:?}");
    println!("two scheduled runs and a pruning after {:?}", started.elapsed());

    let jobs = json(&cluster, &["get", "jobs", "-o", "json"]);
    // (A next run may have started meanwhile; only finished Jobs count as history.)
    let finished = |j: &&Value| j["status"]["conditions"].as_array().is_some_and(|c| !c.is_empty());
    let remaining: Vec<&Value> = jobs["items"].as_array().unwrap().iter().filter(finished).collect();
    let names: Vec<&str> = remaining.iter().map(|j| j["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 1, "successfulJobsHistoryLimit 1 keeps one finished job (the manual one too): {names:?}");
    let last = remaining[0];
    let stamp = last["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"].as_str().unwrap();
    assert!(stamp.ends_with("+01:00") || stamp.ends_with("+02:00"), "scheduled time in Berlin time: {stamp}");
    let at: jiff::Timestamp = stamp.parse().unwrap();
    assert_eq!(at.as_second() % 60, 0, "runs start on the minute");
    assert_eq!(names[0], format!("tick-{}", at.as_second() / 60), "named after the scheduled minute");
    let pod_labels = json(&cluster, &["get", "pods", "-l", &format!("job-name={}", names[0]), "-o", "json"]);
    assert_eq!(pod_labels["items"].as_array().unwrap().len(), 1);

    let cron = json(&cluster, &["get", "cronjob", "tick", "-o", "json"]);
    assert!(cron["status"]["lastScheduleTime"].is_string(), "{:#}", cron["status"]);
    assert!(cron["status"]["lastSuccessfulTime"].is_string(), "{:#}", cron["status"]);
    let events = events_of(&cluster, "tick");
    let has = |reason: &str, prefix: &str| events.iter().any(|(r, m)| r == reason && m.starts_with(prefix));
    assert!(has("SuccessfulCreate", "Created job tick-"), "{events:?}");
    assert!(has("SawCompletedJob", "Saw completed job: tick-"), "{events:?}");
    assert!(has("SuccessfulDelete", "Deleted job "), "{events:?}");
}
