//! Reads what a pod references from the API server: the ConfigMaps and Secrets named by its
//! environment, volumes and `imagePullSecrets`, and a token for each projected
//! `serviceAccountToken` source (TokenRequest, bound to the pod, kept in [`Tokens`] until it is
//! due to be refreshed), and the handler of the pod's RuntimeClass. An object that does not
//! exist is left out: [`crate::pod_to_group`] decides whether the pod waits for it or goes
//! on without it (`optional`).

use std::collections::BTreeSet;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, ServiceAccount};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, PostParams};

use super::objects::Objects;
use super::tokens::{self, Tokens};
use crate::error::PodError;
use crate::inputs::{ClusterDns, Inputs};

/// Most objects of a kind one pod may reference: bounds the reads a pod costs (checked by
/// [`check`] before anything is read).
const MAX_REFS: usize = 64;

/// The names a pod's spec references, by kind.
#[derive(Default)]
struct Refs {
    config_maps: BTreeSet<String>,
    secrets: BTreeSet<String>,
}

fn container_refs(c: &Container, r: &mut Refs) {
    for e in c.env.iter().flatten() {
        if let Some(v) = &e.value_from {
            if let Some(k) = &v.config_map_key_ref {
                r.config_maps.insert(k.name.clone());
            }
            if let Some(k) = &v.secret_key_ref {
                r.secrets.insert(k.name.clone());
            }
        }
    }
    for f in c.env_from.iter().flatten() {
        if let Some(k) = &f.config_map_ref {
            r.config_maps.insert(k.name.clone());
        }
        if let Some(k) = &f.secret_ref {
            r.secrets.insert(k.name.clone());
        }
    }
}

fn refs(pod: &Pod) -> Refs {
    let mut r = Refs::default();
    let Some(spec) = &pod.spec else { return r };
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        container_refs(c, &mut r);
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(c) = &v.config_map {
            r.config_maps.insert(c.name.clone());
        }
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            r.secrets.insert(s);
        }
        for s in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &s.config_map {
                r.config_maps.insert(c.name.clone());
            }
            if let Some(c) = &s.secret {
                r.secrets.insert(c.name.clone());
            }
        }
    }
    for s in spec.image_pull_secrets.iter().flatten() {
        r.secrets.insert(s.name.clone());
    }
    r
}

/// Refuses a pod that references more objects than [`MAX_REFS`] of a kind.
pub fn check(pod: &Pod) -> Result<(), PodError> {
    let r = refs(pod);
    let tokens = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .flat_map(|v| v.projected.iter().flat_map(|p| p.sources.iter().flatten()))
        .filter(|s| s.service_account_token.is_some())
        .count();
    if r.config_maps.len().max(r.secrets.len()).max(tokens) > MAX_REFS {
        return Err(PodError::unsupported(
            "spec",
            format!("references more than {MAX_REFS} ConfigMaps, Secrets or tokens"),
        ));
    }
    Ok(())
}

/// Where the ConfigMaps and Secrets of a rendering come from: read afresh (a new pod), or
/// through the objects kept for at most a period (a running pod's volumes rendered again).
#[derive(Clone, Copy)]
pub enum Reads<'a> {
    Fresh,
    Kept(&'a Objects, std::time::Duration),
}

/// The inputs of `pod`, read in its namespace through `client`. Errors of the API server
/// (other than a missing object) are returned, to be tried again.
pub async fn resolve(
    client: &kube::Client,
    pod: &Pod,
    host_ip: &str,
    cluster_dns: Option<&ClusterDns>,
    held: &Tokens,
    reads: Reads<'_>,
) -> Result<Inputs, kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let r = refs(pod);
    let mut out = Inputs {
        host_ip: Some(host_ip.to_string()),
        cluster_dns: cluster_dns.cloned(),
        ..Default::default()
    };
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for name in &r.config_maps {
        let got = match reads {
            Reads::Fresh => cms.get_opt(name).await?,
            Reads::Kept(kept, ttl) => kept.config_map(&cms, ns, name, ttl).await?,
        };
        if let Some(cm) = got {
            out.config_maps.insert(name.clone(), cm);
        }
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    for name in &r.secrets {
        let got = match reads {
            Reads::Fresh => secrets.get_opt(name).await?,
            Reads::Kept(kept, ttl) => kept.secret(&secrets, ns, name, ttl).await?,
        };
        if let Some(s) = got {
            out.secrets.insert(name.clone(), s);
        }
    }
    if let Some(name) = pod
        .spec
        .as_ref()
        .and_then(|s| s.runtime_class_name.as_deref())
    {
        let classes: Api<RuntimeClass> = Api::all(client.clone());
        out.runtime_handler = classes.get_opt(name).await?.map(|c| c.handler);
    }
    tokens(client, pod, ns, held, &mut out).await?;
    Ok(out)
}

/// A token for each projected `serviceAccountToken` source, keyed `VOLUME/PATH`: the one
/// held for the pod, else one requested for the pod's service account with the source's
/// audience and lifetime (`expirationSeconds`, 3600 when unset, at least 600), bound to the
/// pod, and held until 80% of its lifetime passed.
async fn tokens(
    client: &kube::Client,
    pod: &Pod,
    ns: &str,
    held: &Tokens,
    out: &mut Inputs,
) -> Result<(), kube::Error> {
    let Some(spec) = &pod.spec else { return Ok(()) };
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let sa = spec.service_account_name.as_deref().unwrap_or("default");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    for v in spec.volumes.iter().flatten() {
        for s in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            let Some(t) = &s.service_account_token else {
                continue;
            };
            let key = format!("{}/{}", v.name, t.path);
            if let Some(token) = held.fresh(uid, &key) {
                out.service_account_tokens.insert(key, token);
                continue;
            }
            let seconds = tokens::requested_seconds(t.expiration_seconds);
            let req = TokenRequest {
                spec: Some(TokenRequestSpec {
                    audiences: Some(t.audience.iter().cloned().collect()),
                    expiration_seconds: Some(seconds),
                    bound_object_ref: Some(
                        k8s_openapi::api::authentication::v1::BoundObjectReference {
                            api_version: Some("v1".into()),
                            kind: Some("Pod".into()),
                            name: pod.metadata.name.clone(),
                            uid: pod.metadata.uid.clone(),
                        },
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let got = accounts
                .create_token_request(sa, &PostParams::default(), &req)
                .await?;
            let Some(status) = got.status else { continue };
            if let Some(token) = status.token {
                let keep = tokens::keep_for(
                    seconds,
                    status.expiration_timestamp.as_ref(),
                    k8s_openapi::jiff::Timestamp::now(),
                );
                held.put(uid, &key, token.clone(), keep);
                out.service_account_tokens.insert(key, token);
            }
        }
    }
    Ok(())
}
