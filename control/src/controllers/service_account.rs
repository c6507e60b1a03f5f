//! The ServiceAccount controller and the root-CA publisher, as kube-controller-manager runs
//! them: every namespace has a ServiceAccount `default` and a ConfigMap `kube-root-ca.crt`
//! whose `ca.crt` is the cluster CA (what pods mount to trust the API server). Both are put
//! back when deleted, and the ConfigMap when its CA is changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use super::{DEBOUNCE, ReconcileError, retry_soon};

/// The ServiceAccount every namespace gets.
pub const DEFAULT_ACCOUNT: &str = "default";
/// The ConfigMap with the cluster CA in every namespace, and its key.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
pub const ROOT_CA_KEY: &str = "ca.crt";
/// The description kube-controller-manager's publisher puts on the ConfigMap.
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

pub struct Ctx {
    client: kube::Client,
    /// The cluster CA (PEM).
    ca: String,
}

/// What to do with a namespace's root-CA ConfigMap.
#[derive(Debug, PartialEq)]
enum Publish {
    Nothing,
    Create(ConfigMap),
    Replace(ConfigMap),
}

/// Decides from the ConfigMap there is (if any) and the CA. Pure.
fn publish(namespace: &str, existing: Option<&ConfigMap>, ca: &str) -> Publish {
    let data = BTreeMap::from([(ROOT_CA_KEY.to_string(), ca.to_string())]);
    match existing {
        None => Publish::Create(ConfigMap {
            metadata: ObjectMeta {
                name: Some(ROOT_CA_CONFIGMAP.into()),
                namespace: Some(namespace.into()),
                annotations: Some(BTreeMap::from([("kubernetes.io/description".to_string(), DESCRIPTION.into())])),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        }),
        Some(cm) if cm.data.as_ref() == Some(&data) && cm.binary_data.is_none() => Publish::Nothing,
        Some(cm) => {
            let mut fixed = cm.clone();
            fixed.data = Some(data);
            fixed.binary_data = None;
            Publish::Replace(fixed)
        }
    }
}

/// Treats "already exists" (a race with ourselves) and "namespace is terminating" as done.
fn settled(result: Result<impl Sized, kube::Error>) -> Result<(), ReconcileError> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = ns.metadata.name.clone().unwrap_or_default();
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &name);
    if accounts.get_opt(DEFAULT_ACCOUNT).await?.is_none() {
        let account = ServiceAccount {
            metadata: ObjectMeta { name: Some(DEFAULT_ACCOUNT.into()), ..Default::default() },
            ..Default::default()
        };
        settled(accounts.create(&PostParams::default(), &account).await)?;
    }
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &name);
    let existing = configmaps.get_opt(ROOT_CA_CONFIGMAP).await?;
    match publish(&name, existing.as_ref(), &ctx.ca) {
        Publish::Nothing => {}
        Publish::Create(cm) => settled(configmaps.create(&PostParams::default(), &cm).await)?,
        Publish::Replace(cm) => settled(configmaps.replace(ROOT_CA_CONFIGMAP, &PostParams::default(), &cm).await)?,
    }
    Ok(Action::await_change())
}

/// The cluster CA as the API server serves it to joining agents.
async fn cluster_ca(client: &kube::Client) -> String {
    loop {
        let request = http::Request::get("/cacerts").body(Vec::new()).expect("a static request");
        match client.request_text(request).await {
            Ok(ca) if ca.contains("BEGIN CERTIFICATE") => return ca,
            Ok(_) => tracing::warn!("the API server's /cacerts holds no certificate"),
            Err(e) => tracing::warn!(error = %e, "cannot read the cluster CA"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The namespace an object named `name` in it stands for.
fn namespace_of<K: kube::Resource>(object: &K, name: &str) -> Option<ObjectRef<Namespace>> {
    let meta = object.meta();
    if meta.name.as_deref() != Some(name) {
        return None;
    }
    Some(ObjectRef::new(meta.namespace.as_deref()?))
}

pub async fn run(client: kube::Client) {
    let ca = cluster_ca(&client).await;
    let ctx = Arc::new(Ctx { client: client.clone(), ca });
    let by_name = |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
    Controller::new(Api::<Namespace>::all(client.clone()), watcher::Config::default())
        .watches(Api::<ServiceAccount>::all(client.clone()), by_name(DEFAULT_ACCOUNT), |sa| {
            namespace_of(&sa, DEFAULT_ACCOUNT)
        })
        .watches(Api::<ConfigMap>::all(client.clone()), by_name(ROOT_CA_CONFIGMAP), |cm| {
            namespace_of(&cm, ROOT_CA_CONFIGMAP)
        })
        .with_config(kube::runtime::controller::Config::default().debounce(DEBOUNCE))
        .run(reconcile, retry_soon, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_ca_is_published_and_kept() {
        let Publish::Create(cm) = publish("team", None, "PEM") else { panic!("expected a create") };
        assert_eq!(cm.metadata.name.as_deref(), Some(ROOT_CA_CONFIGMAP));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(cm.data.as_ref().unwrap()[ROOT_CA_KEY], "PEM");
        assert_eq!(publish("team", Some(&cm), "PEM"), Publish::Nothing);
        let mut changed = cm.clone();
        changed.data.as_mut().unwrap().insert("extra".into(), "x".into());
        let Publish::Replace(fixed) = publish("team", Some(&changed), "PEM") else { panic!("expected a replace") };
        assert_eq!(fixed.data, cm.data);
        assert_eq!(fixed.metadata.annotations, cm.metadata.annotations);
    }

    #[test]
    fn only_the_named_objects_map_to_their_namespace() {
        let sa = ServiceAccount {
            metadata: ObjectMeta { name: Some("default".into()), namespace: Some("team".into()), ..Default::default() },
            ..Default::default()
        };
        assert_eq!(namespace_of(&sa, DEFAULT_ACCOUNT), Some(ObjectRef::new("team")));
        assert_eq!(namespace_of(&sa, "other"), None);
    }
}
