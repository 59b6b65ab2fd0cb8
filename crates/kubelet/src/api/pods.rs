//! `/pods` (the node's pods as the controller knows them, from [`NodePods`]), `/runningpods`
//! (the pods berth runs, from their groups, as the kubelet lists its runtime's), `/healthz`,
//! and the lookup of a pod's group and container that the log and exec handlers share.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use berth_client::response::ContainerGroup;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use serde_json::json;

use super::reply::Refusal;
use super::AppState;
use crate::pod::{TAG_POD_NAME, TAG_POD_NAMESPACE};
use crate::pods::pod_uid;

/// The pods bound to the node, as the pod controller's watch sees them.
pub trait NodePods: Send + Sync {
    fn pods(&self) -> Vec<Arc<Pod>>;
}

/// A reflector's store of the node's pods.
impl NodePods for Store<Pod> {
    fn pods(&self) -> Vec<Arc<Pod>> {
        self.state()
    }
}

/// The pod controller's view of the node's pods.
impl NodePods for crate::pods::KnownPods {
    fn pods(&self) -> Vec<Arc<Pod>> {
        self.all()
    }
}

fn json_response(v: &serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

fn tag<'a>(g: &'a ContainerGroup, key: &str) -> Option<&'a str> {
    g.tags
        .iter()
        .find(|t| t.key == key)
        .map(|t| t.value.as_str())
}

/// `GET /pods`: a PodList.
pub(crate) async fn pods(State(state): State<AppState>) -> Response {
    let pods = state.pods.pods();
    let items: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
    json_response(&json!({
        "kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items,
    }))
}

/// `GET /runningpods`: the pods whose group has a running container, with their uid and
/// containers' names and images.
pub(crate) async fn running_pods(State(state): State<AppState>) -> Result<Response, Refusal> {
    let groups = state.backend.pod_groups().await?;
    let items: Vec<_> = groups
        .iter()
        .filter(|g| {
            g.containers
                .iter()
                .any(|c| c.current_state.state.as_deref() == Some("Running"))
        })
        .filter_map(|g| {
            Some(json!({
                "metadata": {
                    "name": tag(g, TAG_POD_NAME)?,
                    "namespace": tag(g, TAG_POD_NAMESPACE)?,
                    "uid": pod_uid(g)?,
                },
                "spec": {"containers": g.containers.iter()
                    .map(|c| json!({"name": c.name, "image": c.image}))
                    .collect::<Vec<_>>()},
                "status": {},
            }))
        })
        .collect();
    Ok(json_response(&json!({
        "kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items,
    })))
}

/// `GET /healthz`.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// The group of the pod `namespace/name` and the check that it has `container`: when berth
/// holds several (a pod replaced by one of the same name), the one of the pod the node knows,
/// else the newest.
pub(crate) async fn pod_group(
    state: &AppState,
    namespace: &str,
    name: &str,
    container: &str,
) -> Result<ContainerGroup, Refusal> {
    if container.is_empty() {
        return Err(Refusal::bad_request(
            "the path needs a namespace, a pod and a container",
        ));
    }
    let chosen = group_of_pod(state, namespace, name).await?;
    let has = chosen.containers.iter().any(|c| c.name == container)
        || chosen.init_containers.iter().any(|c| c.name == container);
    if !has {
        return Err(Refusal::not_found(format!(
            "container {container:?} is not in pod {namespace}/{name}"
        )));
    }
    Ok(chosen)
}

/// The group of the pod `namespace/name`: the one of the pod's uid as the controller knows
/// it, else the newest.
pub(crate) async fn group_of_pod(
    state: &AppState,
    namespace: &str,
    name: &str,
) -> Result<ContainerGroup, Refusal> {
    if namespace.is_empty() || name.is_empty() {
        return Err(Refusal::bad_request("the path needs a namespace and a pod"));
    }
    let mut groups = state.backend.groups_of(namespace, name).await?;
    groups.retain(|g| {
        tag(g, TAG_POD_NAMESPACE) == Some(namespace) && tag(g, TAG_POD_NAME) == Some(name)
    });
    let known_uid = state.pods.pods().iter().find_map(|p| {
        let m = &p.metadata;
        (m.namespace.as_deref() == Some(namespace) && m.name.as_deref() == Some(name))
            .then(|| m.uid.clone())
            .flatten()
    });
    let chosen = match known_uid.and_then(|u| groups.iter().position(|g| pod_uid(g) == Some(&u))) {
        Some(i) => groups.swap_remove(i),
        None => {
            groups.sort_by(|a, b| a.creation_time.cmp(&b.creation_time));
            groups.pop().ok_or_else(|| {
                Refusal::not_found(format!("pod {namespace}/{name} has no container group"))
            })?
        }
    };
    Ok(chosen)
}
