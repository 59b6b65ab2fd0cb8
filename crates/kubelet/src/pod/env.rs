//! A container's environment: `env` (values, `configMapKeyRef`, `secretKeyRef`, `fieldRef`,
//! `resourceFieldRef`) and `envFrom`, resolved from the pod and the caller's inputs; only
//! `status.podIP` is left for berth to fill in when the container starts (ECI's `FieldRef`).
//! Also the kubelet's `$(VAR)` expansion of values, command and args.

use std::collections::BTreeMap;

use berth_core::EnvVar;
use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, ResourceFieldSelector};

use super::Ctx;
use crate::error::PodError;
use crate::quantity::parse_quantity;

/// The environment of a container: what berth is sent, and the values `$(VAR)` may refer to
/// (`None` for a variable berth fills in at start, which cannot be expanded before).
pub(crate) struct Env {
    pub vars: Vec<EnvVar>,
    pub values: BTreeMap<String, Option<String>>,
}

impl Env {
    fn set(&mut self, key: String, value: String, field_path: Option<String>) {
        self.vars.retain(|v| v.key != key);
        self.values
            .insert(key.clone(), field_path.is_none().then(|| value.clone()));
        self.vars.push(EnvVar {
            key,
            value,
            field_path,
        });
    }
}

pub(crate) fn env(ctx: &Ctx, c: &Container, field: &str) -> Result<Env, PodError> {
    let mut out = Env {
        vars: Vec::new(),
        values: BTreeMap::new(),
    };
    for (i, from) in c.env_from.iter().flatten().enumerate() {
        let f = format!("{field}.envFrom[{i}]");
        let prefix = from.prefix.clone().unwrap_or_default();
        let data: BTreeMap<String, String> = if let Some(r) = &from.config_map_ref {
            match ctx.inputs.config_maps.get(&r.name) {
                None if r.optional == Some(true) => BTreeMap::new(),
                None => return Err(PodError::missing(&f, format!("configmap {:?}", r.name))),
                Some(cm) => cm.data.clone().unwrap_or_default(),
            }
        } else if let Some(r) = &from.secret_ref {
            match ctx.inputs.secrets.get(&r.name) {
                None if r.optional == Some(true) => BTreeMap::new(),
                None => return Err(PodError::missing(&f, format!("secret {:?}", r.name))),
                Some(s) => {
                    let mut m = BTreeMap::new();
                    for (k, v) in s.data.iter().flatten() {
                        m.insert(k.clone(), utf8(&v.0, &f)?);
                    }
                    m
                }
            }
        } else {
            return Err(PodError::unsupported(
                f,
                "names neither a configMap nor a secret",
            ));
        };
        for (k, v) in data {
            let key = format!("{prefix}{k}");
            if valid_name(&key) {
                out.set(key, v, None);
            }
        }
    }
    for (i, e) in c.env.iter().flatten().enumerate() {
        let f = format!("{field}.env[{i}]");
        if !valid_name(&e.name) {
            return Err(PodError::unsupported(
                format!("{f}.name"),
                format!("is not an environment variable name: {:?}", e.name),
            ));
        }
        let Some(from) = &e.value_from else {
            let v = expand(e.value.as_deref().unwrap_or_default(), &out.values)
                .map_err(|name| runtime_ref(&format!("{f}.value"), &name))?;
            out.set(e.name.clone(), v, None);
            continue;
        };
        let f = format!("{f}.valueFrom");
        if let Some(r) = &from.config_map_key_ref {
            let v = ctx.inputs.config_maps.get(&r.name).and_then(|cm| {
                cm.data
                    .as_ref()
                    .and_then(|d| d.get(&r.key).cloned())
                    .or_else(|| {
                        cm.binary_data
                            .as_ref()
                            .and_then(|d| d.get(&r.key))
                            .and_then(|b| String::from_utf8(b.0.clone()).ok())
                    })
            });
            match v {
                Some(v) => out.set(e.name.clone(), v, None),
                None if r.optional == Some(true) => {}
                None => {
                    return Err(PodError::missing(
                        format!("{f}.configMapKeyRef"),
                        format!("key {:?} of configmap {:?}", r.key, r.name),
                    ))
                }
            }
        } else if let Some(r) = &from.secret_key_ref {
            match ctx
                .inputs
                .secrets
                .get(&r.name)
                .and_then(|s| s.data.as_ref())
                .and_then(|d| d.get(&r.key))
            {
                Some(v) => out.set(e.name.clone(), utf8(&v.0, &f)?, None),
                None if r.optional == Some(true) => {}
                None => {
                    return Err(PodError::missing(
                        format!("{f}.secretKeyRef"),
                        format!("key {:?} of secret {:?}", r.key, r.name),
                    ))
                }
            }
        } else if let Some(r) = &from.field_ref {
            match field_value(ctx, r, &format!("{f}.fieldRef"), true)? {
                FieldValue::Value(v) => out.set(e.name.clone(), v, None),
                FieldValue::PodIp => {
                    out.set(e.name.clone(), String::new(), Some("status.podIP".into()))
                }
            }
        } else if let Some(r) = &from.resource_field_ref {
            let v = resource_value(ctx, Some(c), r, &format!("{f}.resourceFieldRef"))?;
            out.set(e.name.clone(), v, None);
        } else if from.file_key_ref.is_some() {
            return Err(PodError::unsupported(
                format!("{f}.fileKeyRef"),
                "is not supported by berth",
            ));
        } else {
            return Err(PodError::unsupported(f, "is empty"));
        }
    }
    Ok(out)
}

pub(crate) fn runtime_ref(field: &str, name: &str) -> PodError {
    PodError::unsupported(
        field,
        format!("refers to $({name}), whose value berth only knows when the container starts"),
    )
}

/// An environment variable name as Kubernetes allows it: printable ASCII without `=`.
fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && s.bytes().all(|b| b.is_ascii_graphic() && b != b'=')
}

fn utf8(b: &[u8], field: &str) -> Result<String, PodError> {
    let s = String::from_utf8(b.to_vec())
        .map_err(|_| PodError::unsupported(field, "is not UTF-8 text"))?;
    if s.contains('\0') {
        return Err(PodError::unsupported(field, "holds a NUL byte"));
    }
    Ok(s)
}

/// Expands `$(NAME)` to the value of an earlier variable and `$$` to `$`, as the kubelet
/// does; a reference to an unknown name stays as written. `Err(name)` when it refers to a
/// variable berth fills in at start.
pub(crate) fn expand(s: &str, values: &BTreeMap<String, Option<String>>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match values.get(name) {
                        Some(Some(v)) => out.push_str(v),
                        Some(None) => return Err(name.to_string()),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

pub(crate) enum FieldValue {
    Value(String),
    /// `status.podIP`: filled in by berth when the container starts.
    PodIp,
}

/// The value of a `fieldRef`. `env` allows `status.podIP` (left to berth); a downward API
/// file must be written before the group starts and so cannot hold it.
pub(crate) fn field_value(
    ctx: &Ctx,
    r: &ObjectFieldSelector,
    field: &str,
    env: bool,
) -> Result<FieldValue, PodError> {
    let meta = &ctx.pod.metadata;
    let path = r.field_path.as_str();
    let label = |prefix: &str, m: &Option<BTreeMap<String, String>>| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(
            m.as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default(),
        )
    };
    let v = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" if !env => map_lines(meta.labels.as_ref()),
        "metadata.annotations" if !env => map_lines(meta.annotations.as_ref()),
        "spec.nodeName" => ctx.spec.node_name.clone().unwrap_or_default(),
        "spec.serviceAccountName" => ctx.spec.service_account_name.clone().unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => ctx
            .inputs
            .host_ip
            .clone()
            .ok_or_else(|| PodError::missing(field, "the node's address"))?,
        "status.podIP" | "status.podIPs" if env => return Ok(FieldValue::PodIp),
        _ => {
            if let Some(v) = label("metadata.labels['", &meta.labels) {
                v
            } else if let Some(v) = label("metadata.annotations['", &meta.annotations) {
                v
            } else {
                return Err(PodError::unsupported(
                    format!("{field}.fieldPath"),
                    format!("{path:?} is not supported by berth here"),
                ));
            }
        }
    };
    Ok(FieldValue::Value(v))
}

/// Labels or annotations as the downward API writes them: `key="value"` lines, sorted.
fn map_lines(m: Option<&BTreeMap<String, String>>) -> String {
    m.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}\n", serde_json::Value::from(v.as_str())))
        .collect()
}

/// A `resourceFieldRef`: the container's limit (the group's size where it sets none, as the
/// kubelet uses the node's allocatable) or request (0 where unset), divided by `divisor` and
/// rounded up.
pub(crate) fn resource_value(
    ctx: &Ctx,
    this: Option<&Container>,
    r: &ResourceFieldSelector,
    field: &str,
) -> Result<String, PodError> {
    let c = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => ctx
            .spec
            .containers
            .iter()
            .chain(ctx.spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .ok_or_else(|| {
                PodError::unsupported(
                    format!("{field}.containerName"),
                    format!("names no container of the pod: {name:?}"),
                )
            })?,
        None => this.ok_or_else(|| {
            PodError::unsupported(format!("{field}.containerName"), "is required in a volume")
        })?,
    };
    let (which, name) = r
        .resource
        .split_once('.')
        .filter(|(w, n)| {
            matches!(*w, "limits" | "requests")
                && matches!(*n, "cpu" | "memory" | "ephemeral-storage")
        })
        .ok_or_else(|| {
            PodError::unsupported(
                format!("{field}.resource"),
                format!("{:?} is not supported by berth", r.resource),
            )
        })?;
    let res = c.resources.as_ref();
    let m = if which == "limits" {
        res.and_then(|r| r.limits.as_ref())
    } else {
        res.and_then(|r| r.requests.as_ref())
    };
    let own = match m.and_then(|m| m.get(name)) {
        Some(q) => Some(parse_quantity(&q.0).ok_or_else(|| {
            PodError::unsupported(
                format!("{field}.resource"),
                format!("{name} is not a quantity: {:?}", q.0),
            )
        })?),
        None => None,
    };
    let value = match (own, which) {
        (Some(v), _) => v,
        (None, "requests") => 0.0,
        (None, _) => match name {
            "cpu" => ctx.size.cpu,
            "memory" => ctx.size.memory * (1u64 << 30) as f64,
            _ => f64::from(berth_core::DEFAULT_EPHEMERAL_STORAGE_GIB) * (1u64 << 30) as f64,
        },
    };
    let divisor = match &r.divisor {
        None => 1.0,
        Some(d) => parse_quantity(&d.0).filter(|d| *d > 0.0).ok_or_else(|| {
            PodError::unsupported(
                format!("{field}.divisor"),
                format!("is not a positive quantity: {:?}", d.0),
            )
        })?,
    };
    Ok(format!(
        "{}",
        (value / divisor - 1e-9).ceil().max(0.0) as u64
    ))
}
