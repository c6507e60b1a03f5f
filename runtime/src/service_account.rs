//! ServiceAccount tokens in projected volumes, as the kubelet's token manager keeps them: the
//! agent asks the API for a token of the pod's ServiceAccount bound to the pod (TokenRequest),
//! writes it into the volume, and writes a fresh one after 80% of its life, by renaming it over
//! the old file so a container's bind mount or a Wasm guest's preopened directory sees it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount, ServiceAccountTokenProjection};
use kube::api::{Api, PostParams};

use crate::env::ConfigError;

/// A token and how long it has to live.
pub struct Token {
    pub token: String,
    pub lifetime: Duration,
}

/// Asks the API for a token of the pod's ServiceAccount, bound to the pod, for `projection`.
pub async fn request(
    client: &kube::Client,
    pod: &Pod,
    projection: &ServiceAccountTokenProjection,
) -> Result<Token, kube::Error> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let account = pod.spec.as_ref().and_then(|s| s.service_account_name.as_deref()).unwrap_or("default");
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: projection.audience.iter().cloned().collect(),
            expiration_seconds: projection.expiration_seconds,
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let answer = api.create_token_request(account, &PostParams::default(), &request).await?;
    let Some(status) = answer.status else {
        return Err(kube::Error::Service("the TokenRequest answer has no status".into()));
    };
    let left = status.expiration_timestamp.0.as_second() - jiff::Timestamp::now().as_second();
    Ok(Token { token: status.token, lifetime: Duration::from_secs(left.max(0) as u64) })
}

/// The token's bytes for a projected volume, first time round.
pub async fn project(
    client: &kube::Client,
    pod: &Pod,
    projection: &ServiceAccountTokenProjection,
) -> Result<Token, ConfigError> {
    request(client, pod, projection).await.map_err(|e| {
        let account = pod.spec.as_ref().and_then(|s| s.service_account_name.as_deref()).unwrap_or("default");
        ConfigError(format!("requesting a token of serviceaccount {account:?}: {e}"))
    })
}

/// When to ask for the next token: after 80% of its life, as the kubelet does (at least a
/// second from now).
pub fn refresh_after(lifetime: Duration) -> Duration {
    lifetime.mul_f64(0.8).max(Duration::from_secs(1))
}

/// Writes `contents` to `file` by renaming a sibling over it, so readers see the old or the new
/// token, never half of one, and a bind mount of the directory sees the new file.
pub fn replace(file: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut temporary = file.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, contents)?;
    std::fs::rename(&temporary, file)
}

/// How often a refresher looks whether its volume is still there.
const WATCH_VOLUME: Duration = Duration::from_secs(30);

/// The refresher of each token file, so a volume prepared again replaces its old refresher.
static REFRESHERS: LazyLock<Mutex<HashMap<PathBuf, tokio::task::AbortHandle>>> = LazyLock::new(Default::default);

/// Keeps `file` holding a live token: asks for a new one after 80% of `lifetime`, until the
/// volume's directory is gone or the API refuses (the pod or its ServiceAccount is gone).
pub fn keep_fresh(
    client: kube::Client,
    pod: Pod,
    projection: ServiceAccountTokenProjection,
    file: PathBuf,
    lifetime: Duration,
) {
    let key = file.clone();
    let task = tokio::spawn(async move {
        let mut wait = refresh_after(lifetime);
        loop {
            // Looks every half minute whether the volume is still there, so a removed pod's
            // refresher ends soon.
            let due = tokio::time::Instant::now() + wait;
            let mut gone = false;
            while !gone && tokio::time::Instant::now() < due {
                tokio::time::sleep_until(due.min(tokio::time::Instant::now() + WATCH_VOLUME)).await;
                gone = !file.parent().is_some_and(Path::exists);
            }
            if gone {
                break;
            }
            match request(&client, &pod, &projection).await {
                Ok(token) => {
                    if let Err(e) = replace(&file, token.token.as_bytes()) {
                        tracing::warn!(file = %file.display(), error = %e, "cannot write the refreshed token");
                        break;
                    }
                    wait = refresh_after(token.lifetime);
                }
                Err(kube::Error::Api(status)) if matches!(status.code, 401 | 403 | 404) => {
                    tracing::debug!(pod = ?pod.metadata.name, code = status.code, "no more tokens for this pod");
                    break;
                }
                Err(e) => {
                    tracing::warn!(pod = ?pod.metadata.name, error = %e, "cannot refresh the pod's token, retrying");
                    wait = Duration::from_secs(10);
                }
            }
        }
        let mut refreshers = REFRESHERS.lock().expect("refreshers lock");
        if refreshers.get(&file).is_some_and(|h| h.id() == tokio::task::id()) {
            refreshers.remove(&file);
        }
    });
    if let Some(old) = REFRESHERS.lock().expect("refreshers lock").insert(key, task.abort_handle()) {
        old.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_after_four_fifths_of_their_life() {
        assert_eq!(refresh_after(Duration::from_secs(3600)), Duration::from_secs(2880));
        assert_eq!(refresh_after(Duration::ZERO), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn the_token_is_requested_for_the_pod_and_written_anew_before_it_expires() {
        use std::sync::{Arc, Mutex};
        let asked: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
        let seen = asked.clone();
        let service = tower::service_fn(move |request: hyper::Request<kube::client::Body>| {
            let seen = seen.clone();
            async move {
                let path = request.uri().path().to_string();
                let body = http_body_util::BodyExt::collect(request.into_body()).await.unwrap().to_bytes();
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push((path, serde_json::from_slice(&body).unwrap()));
                    seen.len()
                };
                let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
                let answer = serde_json::json!({
                    "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {},
                    "status": {"token": format!("token-{n}"), "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}
                });
                let body = kube::client::Body::from(serde_json::to_vec(&answer).unwrap());
                Ok::<_, std::convert::Infallible>(hyper::Response::new(body))
            }
        });
        let client = kube::Client::new(service, "default");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "apps", "uid": "uid-1"},
            "spec": {"serviceAccountName": "builder", "containers": []}
        }))
        .unwrap();
        let projection =
            ServiceAccountTokenProjection { path: "token".into(), expiration_seconds: Some(3607), audience: None };
        let first = project(&client, &pod, &projection).await.unwrap();
        assert_eq!(first.token, "token-1");
        assert!(first.lifetime > Duration::from_secs(3500), "{:?}", first.lifetime);
        let (path, body) = asked.lock().unwrap()[0].clone();
        assert_eq!(path, "/api/v1/namespaces/apps/serviceaccounts/builder/token");
        assert_eq!(body["spec"]["expirationSeconds"], 3607);
        assert_eq!(
            body["spec"]["boundObjectRef"],
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "uid-1"})
        );

        // A token with no life left is replaced a second later.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        replace(&file, first.token.as_bytes()).unwrap();
        keep_fresh(client, pod, projection, file.clone(), Duration::ZERO);
        let started = std::time::Instant::now();
        while std::fs::read_to_string(&file).unwrap() != "token-2" {
            assert!(started.elapsed() < Duration::from_secs(20), "the token was not refreshed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[test]
    fn a_token_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        replace(&file, b"one").unwrap();
        let held = std::fs::File::open(&file).unwrap();
        replace(&file, b"two").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        assert!(!dir.path().join("token.new").exists());
        drop(held);
    }
}
