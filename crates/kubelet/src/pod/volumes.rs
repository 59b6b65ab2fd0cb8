//! The pod's volumes → the group's `Volume.N`: `emptyDir` (disk or memory), `nfs`, and every
//! volume whose files the API server knows — `configMap`, `secret`, `downwardAPI` and
//! `projected` (with the service-account token the caller passes in) — written once as a
//! `ConfigFileVolume`. `hostPath` and every cloud or claim kind are refused.

use std::collections::BTreeMap;

use base64::Engine;
use berth_core::volume::{
    ConfigFile, EmptyDirMedium, Volume, VolumeSource, MAX_CONFIG_BYTES, MAX_CONFIG_FILES,
    MAX_VOLUMES,
};
use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Volume as KVolume};

use super::env::{field_value, resource_value, FieldValue};
use super::Ctx;
use crate::error::PodError;
use crate::quantity::parse_quantity;

/// Group-wide running totals of the limits berth keeps.
#[derive(Default)]
struct Budget {
    config_bytes: usize,
    memory_bytes: f64,
}

pub(crate) fn volumes(ctx: &Ctx, storage_gib: Option<u32>) -> Result<Vec<Volume>, PodError> {
    let list = ctx.spec.volumes.as_deref().unwrap_or_default();
    if list.len() > MAX_VOLUMES {
        return Err(PodError::unsupported(
            "spec.volumes",
            format!(
                "berth allows at most {MAX_VOLUMES} volumes, the pod has {}",
                list.len()
            ),
        ));
    }
    let storage = f64::from(storage_gib.unwrap_or(berth_core::DEFAULT_EPHEMERAL_STORAGE_GIB))
        * (1u64 << 30) as f64;
    let mut budget = Budget::default();
    let mut out = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let field = format!("spec.volumes[{i}]");
        let source = source(ctx, v, &field, storage, &mut budget)?;
        out.push(Volume {
            name: v.name.clone(),
            source,
        });
    }
    Ok(out)
}

fn source(
    ctx: &Ctx,
    v: &KVolume,
    field: &str,
    storage: f64,
    budget: &mut Budget,
) -> Result<VolumeSource, PodError> {
    let f = |s: &str| format!("{field}.{s}");
    if let Some(e) = &v.empty_dir {
        if e.mode.is_some() {
            return Err(PodError::unsupported(
                f("emptyDir.mode"),
                "is not supported by berth",
            ));
        }
        let medium = match e.medium.as_deref().unwrap_or("") {
            "" => EmptyDirMedium::Disk,
            "Memory" => EmptyDirMedium::Memory,
            m => {
                return Err(PodError::unsupported(
                    f("emptyDir.medium"),
                    format!("{m:?} is not supported by berth (\"\" and Memory are)"),
                ))
            }
        };
        let limit = match &e.size_limit {
            None => None,
            Some(q) => Some(
                parse_quantity(&q.0)
                    .filter(|b| *b >= 1.0)
                    .ok_or_else(|| {
                        PodError::unsupported(
                            f("emptyDir.sizeLimit"),
                            format!("is not a size: {:?}", q.0),
                        )
                    })?
                    .ceil(),
            ),
        };
        let group_memory = ctx.size.memory * (1u64 << 30) as f64;
        match medium {
            EmptyDirMedium::Disk if limit.is_some_and(|l| l < storage) => {
                return Err(PodError::unsupported(
                    f("emptyDir.sizeLimit"),
                    format!("below the group's temporary storage ({} GiB) is not enforced by berth on disk: leave it out, ask for more storage, or use medium Memory", storage / (1u64 << 30) as f64),
                ))
            }
            EmptyDirMedium::Memory => {
                budget.memory_bytes += limit.unwrap_or(group_memory);
                if budget.memory_bytes > group_memory + 0.5 {
                    return Err(PodError::unsupported(
                        f("emptyDir.sizeLimit"),
                        format!("memory emptyDirs may together hold at most the group's memory ({} GiB); one without sizeLimit takes all of it", ctx.size.memory),
                    ));
                }
            }
            _ => {}
        }
        return Ok(VolumeSource::EmptyDir {
            medium,
            size_limit: limit.map(|l| format!("{}", l as u64)),
            size_limit_bytes: limit.map(|l| l as u64),
        });
    }
    if let Some(n) = &v.nfs {
        return Ok(VolumeSource::Nfs {
            server: n.server.to_ascii_lowercase(),
            path: n.path.clone(),
            read_only: n.read_only.unwrap_or(false),
        });
    }
    let mut files = Files::new(field);
    let default_mode;
    if let Some(c) = &v.config_map {
        no_user(c.default_user, &f("configMap.defaultUser"))?;
        default_mode = c.default_mode;
        files.config_map(
            ctx,
            &c.name,
            c.items.as_deref(),
            c.optional,
            &f("configMap"),
        )?;
    } else if let Some(s) = &v.secret {
        no_user(s.default_user, &f("secret.defaultUser"))?;
        default_mode = s.default_mode;
        let name = s.secret_name.clone().unwrap_or_default();
        files.secret(ctx, &name, s.items.as_deref(), s.optional, &f("secret"))?;
    } else if let Some(d) = &v.downward_api {
        no_user(d.default_user, &f("downwardAPI.defaultUser"))?;
        default_mode = d.default_mode;
        files.downward(ctx, d.items.as_deref(), &f("downwardAPI"))?;
    } else if let Some(p) = &v.projected {
        no_user(p.default_user, &f("projected.defaultUser"))?;
        default_mode = p.default_mode;
        for (j, s) in p.sources.iter().flatten().enumerate() {
            let sf = format!("{field}.projected.sources[{j}]");
            if let Some(c) = &s.config_map {
                files.config_map(
                    ctx,
                    &c.name,
                    c.items.as_deref(),
                    c.optional,
                    &format!("{sf}.configMap"),
                )?;
            } else if let Some(c) = &s.secret {
                files.secret(
                    ctx,
                    &c.name,
                    c.items.as_deref(),
                    c.optional,
                    &format!("{sf}.secret"),
                )?;
            } else if let Some(d) = &s.downward_api {
                files.downward(ctx, d.items.as_deref(), &format!("{sf}.downwardAPI"))?;
            } else if let Some(t) = &s.service_account_token {
                no_user(t.user, &format!("{sf}.serviceAccountToken.user"))?;
                let key = format!("{}/{}", v.name, t.path);
                let token = ctx.inputs.service_account_tokens.get(&key).ok_or_else(|| {
                    PodError::missing(
                        format!("{sf}.serviceAccountToken"),
                        format!("the token for {key:?}"),
                    )
                })?;
                files.add(
                    &t.path,
                    token.as_bytes(),
                    None,
                    &format!("{sf}.serviceAccountToken.path"),
                )?;
            } else if s.cluster_trust_bundle.is_some() {
                return Err(PodError::unsupported(
                    format!("{sf}.clusterTrustBundle"),
                    "is not supported by berth",
                ));
            } else if s.pod_certificate.is_some() {
                return Err(PodError::unsupported(
                    format!("{sf}.podCertificate"),
                    "is not supported by berth",
                ));
            } else {
                return Err(PodError::unsupported(sf, "is empty"));
            }
        }
    } else {
        return Err(refused_kind(v, field));
    }
    let default_mode = default_mode
        .map(|m| mode(m, &format!("{field}.defaultMode")))
        .transpose()?;
    let files = files.finish(budget)?;
    Ok(VolumeSource::ConfigFile {
        files,
        default_mode,
    })
}

fn refused_kind(v: &KVolume, field: &str) -> PodError {
    let kind = if v.host_path.is_some() {
        return PodError::unsupported(
            format!("{field}.hostPath"),
            "a virtual node has no host of its own to share: hostPath volumes are refused",
        );
    } else if v.persistent_volume_claim.is_some() {
        "persistentVolumeClaim"
    } else if v.ephemeral.is_some() {
        "ephemeral"
    } else if v.csi.is_some() {
        "csi"
    } else if v.image.is_some() {
        "image"
    } else if v.git_repo.is_some() {
        "gitRepo"
    } else {
        "this volume kind"
    };
    PodError::unsupported(
        format!("{field}.{kind}"),
        "is not supported by berth (emptyDir, configMap, secret, downwardAPI, projected and nfs are)",
    )
}

fn no_user(u: Option<i64>, field: &str) -> Result<(), PodError> {
    match u {
        None => Ok(()),
        Some(_) => Err(PodError::unsupported(
            field,
            "berth does not change the owner of volume files",
        )),
    }
}

fn mode(m: i32, field: &str) -> Result<u32, PodError> {
    u32::try_from(m)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| {
            PodError::unsupported(
                field,
                format!("must be permission bits up to 0777, got {m}"),
            )
        })
}

/// The files of one ConfigFileVolume as they are gathered.
struct Files {
    field: String,
    files: Vec<ConfigFile>,
    bytes: usize,
}

impl Files {
    fn new(field: &str) -> Self {
        Self {
            field: field.to_string(),
            files: Vec::new(),
            bytes: 0,
        }
    }

    fn add(
        &mut self,
        path: &str,
        content: &[u8],
        m: Option<i32>,
        field: &str,
    ) -> Result<(), PodError> {
        let parts: Vec<&str> = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if parts.is_empty()
            || parts.contains(&"..")
            || path.starts_with('/')
            || path.len() > 1024
            || path.contains('\0')
        {
            return Err(PodError::unsupported(
                field,
                format!("must be a relative path without '..': {path:?}"),
            ));
        }
        let path = parts.join("/");
        let nested =
            |a: &str, b: &str| b.starts_with(a) && b.as_bytes().get(a.len()) == Some(&b'/');
        if self
            .files
            .iter()
            .any(|o| o.path == path || nested(&o.path, &path) || nested(&path, &o.path))
        {
            return Err(PodError::unsupported(
                field,
                format!("{path:?} collides with another file of the volume"),
            ));
        }
        if self.files.len() >= MAX_CONFIG_FILES {
            return Err(PodError::unsupported(
                &self.field,
                format!("berth allows at most {MAX_CONFIG_FILES} files in one volume"),
            ));
        }
        self.bytes += content.len();
        if self.bytes > MAX_CONFIG_BYTES {
            return Err(too_big(&self.field));
        }
        self.files.push(ConfigFile {
            path,
            content: base64::engine::general_purpose::STANDARD.encode(content),
            mode: m.map(|m| mode(m, field)).transpose()?,
        });
        Ok(())
    }

    /// The files of `data` chosen by `items` (all keys, sorted, without them).
    fn keys(
        &mut self,
        data: &BTreeMap<String, Vec<u8>>,
        items: Option<&[KeyToPath]>,
        optional: bool,
        what: &str,
        field: &str,
    ) -> Result<(), PodError> {
        match items {
            None => {
                for (k, v) in data {
                    self.add(k, v, None, field)?;
                }
            }
            Some(items) => {
                for (i, it) in items.iter().enumerate() {
                    let f = format!("{field}.items[{i}]");
                    no_user(it.user, &format!("{f}.user"))?;
                    match data.get(&it.key) {
                        Some(v) => self.add(&it.path, v, it.mode, &format!("{f}.path"))?,
                        None if optional => {}
                        None => {
                            return Err(PodError::missing(f, format!("key {:?} of {what}", it.key)))
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn config_map(
        &mut self,
        ctx: &Ctx,
        name: &str,
        items: Option<&[KeyToPath]>,
        optional: Option<bool>,
        field: &str,
    ) -> Result<(), PodError> {
        let optional = optional == Some(true);
        let Some(cm) = ctx.inputs.config_maps.get(name) else {
            return if optional {
                Ok(())
            } else {
                Err(PodError::missing(field, format!("configmap {name:?}")))
            };
        };
        let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, v) in cm.data.iter().flatten() {
            data.insert(k.clone(), v.clone().into_bytes());
        }
        for (k, v) in cm.binary_data.iter().flatten() {
            data.insert(k.clone(), v.0.clone());
        }
        self.keys(
            &data,
            items,
            optional,
            &format!("configmap {name:?}"),
            field,
        )
    }

    fn secret(
        &mut self,
        ctx: &Ctx,
        name: &str,
        items: Option<&[KeyToPath]>,
        optional: Option<bool>,
        field: &str,
    ) -> Result<(), PodError> {
        let optional = optional == Some(true);
        let Some(s) = ctx.inputs.secrets.get(name) else {
            return if optional {
                Ok(())
            } else {
                Err(PodError::missing(field, format!("secret {name:?}")))
            };
        };
        let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, v) in s.string_data.iter().flatten() {
            data.insert(k.clone(), v.clone().into_bytes());
        }
        for (k, v) in s.data.iter().flatten() {
            data.insert(k.clone(), v.0.clone());
        }
        self.keys(&data, items, optional, &format!("secret {name:?}"), field)
    }

    fn downward(
        &mut self,
        ctx: &Ctx,
        items: Option<&[DownwardAPIVolumeFile]>,
        field: &str,
    ) -> Result<(), PodError> {
        for (i, it) in items.unwrap_or_default().iter().enumerate() {
            let f = format!("{field}.items[{i}]");
            no_user(it.user, &format!("{f}.user"))?;
            let value = if let Some(r) = &it.field_ref {
                match field_value(ctx, r, &format!("{f}.fieldRef"), false)? {
                    FieldValue::Value(v) => v,
                    FieldValue::PodIp => {
                        return Err(PodError::unsupported(
                            format!("{f}.fieldRef"),
                            "the pod's address is not known when its files are written",
                        ))
                    }
                }
            } else if let Some(r) = &it.resource_field_ref {
                resource_value(ctx, None, r, &format!("{f}.resourceFieldRef"))?
            } else {
                return Err(PodError::unsupported(
                    f,
                    "names neither a field nor a resource",
                ));
            };
            self.add(&it.path, value.as_bytes(), it.mode, &format!("{f}.path"))?;
        }
        Ok(())
    }

    fn finish(self, budget: &mut Budget) -> Result<Vec<ConfigFile>, PodError> {
        budget.config_bytes += self.bytes;
        if budget.config_bytes > MAX_CONFIG_BYTES {
            return Err(too_big(&self.field));
        }
        Ok(self.files)
    }
}

fn too_big(field: &str) -> PodError {
    PodError::unsupported(
        field,
        format!("the files of berth's volumes may together hold at most {MAX_CONFIG_BYTES} bytes"),
    )
}
