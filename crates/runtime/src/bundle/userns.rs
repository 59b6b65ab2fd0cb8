//! The user namespace of a container (`berth serve --userns`): container ids `0..count`
//! mapped to host ids `host..host+count`, the group's range.
//!
//! The root filesystem is already id-mapped by the node (the layers are mounted through the
//! group's user namespace), so the runtime only creates the namespace from the maps. The
//! network namespace stays owned by the host's user namespace, so the container's root may
//! not write its sysctls: the node sets `net.ipv4.ping_group_range` and the group's `net.*`
//! sysctls itself and the bundle leaves them out.

use oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Spec};

use crate::error::RuntimeError;

/// The host range a container's ids map to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserMap {
    /// First host id (container id 0).
    pub host: u32,
    /// Ids mapped.
    pub count: u32,
}

/// Adds the user namespace of `map` to `spec`.
pub(crate) fn apply(spec: &mut Spec, map: UserMap) -> Result<(), RuntimeError> {
    if map.count == 0 || u64::from(map.host) + u64::from(map.count) > u64::from(u32::MAX) {
        return Err(RuntimeError::invalid(format!(
            "invalid user id range {}+{}",
            map.host, map.count
        )));
    }
    let mapping = LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(map.host)
        .size(map.count)
        .build()
        .map_err(RuntimeError::Spec)?;
    let user = LinuxNamespaceBuilder::default()
        .typ(LinuxNamespaceType::User)
        .build()
        .map_err(RuntimeError::Spec)?;
    let Some(linux) = spec.linux_mut() else {
        return Err(RuntimeError::invalid("the spec has no linux section"));
    };
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    namespaces.push(user);
    linux.set_namespaces(Some(namespaces));
    linux.set_uid_mappings(Some(vec![mapping]));
    linux.set_gid_mappings(Some(vec![mapping]));
    if let Some(sysctl) = linux.sysctl_mut() {
        sysctl.retain(|name, _| !name.starts_with("net."));
    }
    Ok(())
}
