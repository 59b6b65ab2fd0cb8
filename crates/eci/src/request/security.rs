//! CreateContainerGroup's security context: a container's `SecurityContext.Capability.Add.N`
//! and `.Drop.N` (berth's extension), and the group's `SecurityContext.Sysctl.N` and
//! `SecurityContext.FsGroup` (berth's extension), bounded and
//! checked by name (`berth_core::capability`, `berth_core::sysctl`).

use berth_core::sysctl::{self, Sysctl, MAX_SYSCTLS};

use crate::error::ApiError;
use crate::params::Params;

/// Most capabilities one container may add or drop.
pub const MAX_CAPABILITIES: usize = 64;

/// `(add, drop)` of the container whose parameters start with `prefix`.
pub fn capabilities(p: &Params, prefix: &str) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let list = |what: &str| -> Result<Vec<String>, ApiError> {
        let name = format!("{prefix}.SecurityContext.Capability.{what}");
        let caps = p.string_list(&name)?;
        if caps.len() > MAX_CAPABILITIES {
            return Err(ApiError::value_exceeded(
                &name,
                format!("allows at most {MAX_CAPABILITIES} capabilities"),
            ));
        }
        for c in &caps {
            if c.is_empty() || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(ApiError::invalid_parameter(
                    &format!("{name}.N"),
                    format!("is not a capability name: {c:?}"),
                ));
            }
        }
        Ok(caps)
    };
    let add = list("Add")?;
    let drop = list("Drop")?;
    if let Some(c) = drop.iter().find(|c| !berth_core::capability::droppable(c)) {
        return Err(ApiError::invalid_parameter(
            &format!("{prefix}.SecurityContext.Capability.Drop.N"),
            format!("names no capability of Linux (nor ALL): {c:?}"),
        ));
    }
    Ok((add, drop))
}

/// The group's `SecurityContext.FsGroup` (berth's extension): a group id from 0 to
/// [`berth_core::MAX_FS_GROUP`].
pub fn fs_group(p: &Params) -> Result<Option<u32>, ApiError> {
    const NAME: &str = "SecurityContext.FsGroup";
    let Some(raw) = p.raw(NAME) else {
        return Ok(None);
    };
    match raw.parse::<u32>() {
        Ok(g) if g <= berth_core::MAX_FS_GROUP => Ok(Some(g)),
        _ => Err(ApiError::invalid_parameter(
            NAME,
            format!(
                "must be a group id from 0 to {}: {raw:?}",
                berth_core::MAX_FS_GROUP
            ),
        )),
    }
}

/// The group's `SecurityContext.Sysctl.N`: namespaced names only, each once.
pub fn sysctls(p: &Params) -> Result<Vec<Sysctl>, ApiError> {
    let idx = p.indexes("SecurityContext.Sysctl")?;
    if idx.len() > MAX_SYSCTLS {
        return Err(ApiError::value_exceeded(
            "SecurityContext.Sysctl",
            format!("allows at most {MAX_SYSCTLS} sysctls"),
        ));
    }
    let mut out: Vec<Sysctl> = Vec::new();
    for i in idx {
        let name_param = format!("SecurityContext.Sysctl.{i}.Name");
        let value_param = format!("SecurityContext.Sysctl.{i}.Value");
        let name = p.required(&name_param)?;
        sysctl::check_name(&name).map_err(|e| ApiError::invalid_parameter(&name_param, e))?;
        if out.iter().any(|s| s.name == name) {
            return Err(ApiError::invalid_parameter(
                &name_param,
                format!("{name} is given twice"),
            ));
        }
        let value = p.raw(&value_param).unwrap_or_default().to_string();
        sysctl::check_value(&name, &value)
            .map_err(|e| ApiError::invalid_parameter(&value_param, e))?;
        out.push(Sysctl { name, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::parse(q, None).unwrap()
    }

    #[test]
    fn drops_are_checked_by_name() {
        let (add, drop) = capabilities(
            &params("C.1.SecurityContext.Capability.Add.1=NET_ADMIN&C.1.SecurityContext.Capability.Drop.1=ALL&C.1.SecurityContext.Capability.Drop.2=cap_chown"),
            "C.1",
        )
        .unwrap();
        assert_eq!(add, ["NET_ADMIN"]);
        assert_eq!(drop, ["ALL", "cap_chown"]);
        let e =
            capabilities(&params("C.1.SecurityContext.Capability.Drop.1=FLY"), "C.1").unwrap_err();
        assert!(e.message.contains("Capability.Drop.N"), "{}", e.message);
    }

    #[test]
    fn fs_group_is_a_group_id_every_user_namespace_maps() {
        assert_eq!(fs_group(&params("")).unwrap(), None);
        assert_eq!(
            fs_group(&params("SecurityContext.FsGroup=2000")).unwrap(),
            Some(2000)
        );
        assert_eq!(
            fs_group(&params("SecurityContext.FsGroup=65535")).unwrap(),
            Some(65535)
        );
        for bad in ["65536", "-1", "staff", "", "4294967296"] {
            let e = fs_group(&params(&format!("SecurityContext.FsGroup={bad}"))).expect_err(bad);
            assert!(
                e.message.contains("SecurityContext.FsGroup"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn sysctls_must_be_namespaced_and_one_line() {
        let s = sysctls(&params(
            "SecurityContext.Sysctl.1.Name=net.ipv4.ip_local_port_range&SecurityContext.Sysctl.1.Value=2000%2030000&SecurityContext.Sysctl.2.Name=kernel.shmmni&SecurityContext.Sysctl.2.Value=8192",
        ))
        .unwrap();
        assert_eq!(s[0].value, "2000 30000");
        assert_eq!(s[1].name, "kernel.shmmni");
        for (q, param) in [
            ("SecurityContext.Sysctl.1.Name=kernel.panic&SecurityContext.Sysctl.1.Value=1", "SecurityContext.Sysctl.1.Name"),
            ("SecurityContext.Sysctl.1.Name=vm.swappiness&SecurityContext.Sysctl.1.Value=1", "SecurityContext.Sysctl.1.Name"),
            ("SecurityContext.Sysctl.1.Name=net.core.somaxconn&SecurityContext.Sysctl.1.Value=1%0A2", "SecurityContext.Sysctl.1.Value"),
            ("SecurityContext.Sysctl.1.Name=net.core.somaxconn", "SecurityContext.Sysctl.1.Value"),
            ("SecurityContext.Sysctl.1.Name=net.core.somaxconn&SecurityContext.Sysctl.1.Value=1&SecurityContext.Sysctl.2.Name=net.core.somaxconn&SecurityContext.Sysctl.2.Value=2", "SecurityContext.Sysctl.2.Name"),
        ] {
            let e = sysctls(&params(q)).expect_err(q);
            assert!(e.message.contains(param), "{q}: {}", e.message);
        }
    }
}
