//! Which Wasm containers may open sockets. wasi-sockets are closed by default (DESIGN.md: the
//! wasmtime shim grants nothing unless asked); a container that declares ports clearly means to
//! listen, and a pod can open sockets for all its Wasm containers (clients, for example) with
//! the annotation `wharf.dev/wasi-sockets: "allow"`. An allowed guest gets the pod's network
//! namespace (`ContainerSpec.network`), so it shares localhost and the pod IP with the pod's
//! Linux containers.

use k8s_openapi::api::core::v1::{Container, Pod};

/// The pod annotation that allows sockets to every Wasm container of the pod.
pub const ANNOTATION: &str = "wharf.dev/wasi-sockets";

/// Whether `container` of `pod`, run on wasmtime, may use wasi-sockets (TCP, UDP, name lookup):
/// it declares ports, or the pod is annotated `wharf.dev/wasi-sockets: "allow"`.
pub fn wasi_sockets_allowed(pod: &Pod, container: &Container) -> bool {
    let declares_ports = container.ports.as_ref().is_some_and(|ports| !ports.is_empty());
    let annotated = pod.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION)).is_some_and(|v| v == "allow");
    declares_ports || annotated
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    fn pod(annotation: Option<&str>) -> Pod {
        let mut pod = Pod::default();
        if let Some(value) = annotation {
            pod.metadata.annotations = Some([(ANNOTATION.to_string(), value.to_string())].into());
        }
        pod
    }

    fn container(ports: Option<Vec<i32>>) -> Container {
        Container {
            name: "app".into(),
            ports: ports.map(|ports| {
                ports.into_iter().map(|p| ContainerPort { container_port: p, ..Default::default() }).collect()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn closed_unless_ports_or_the_annotation_open_them() {
        assert!(!wasi_sockets_allowed(&pod(None), &container(None)));
        assert!(!wasi_sockets_allowed(&pod(None), &container(Some(vec![]))));
        assert!(wasi_sockets_allowed(&pod(None), &container(Some(vec![8080]))));
        assert!(wasi_sockets_allowed(&pod(Some("allow")), &container(None)));
        assert!(wasi_sockets_allowed(&pod(Some("allow")), &container(Some(vec![8080]))));
    }

    #[test]
    fn only_the_value_allow_opens_them() {
        for value in ["deny", "", "true", "Allow "] {
            assert!(!wasi_sockets_allowed(&pod(Some(value)), &container(None)), "{value:?}");
        }
    }
}
