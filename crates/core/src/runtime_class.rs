//! Runtime classes: how strongly a group is isolated from the host. `runc` runs the group's
//! containers on the host kernel (crun or runc), `gvisor` in gVisor's user-space kernel
//! (`runsc`). A group's class is chosen at creation (`RuntimeClassName`), allowed per account
//! ([`RuntimeClassPolicy`]) and kept in its record.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The isolation a group runs under.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeClass {
    /// The host kernel, through the node's OCI runtime (crun or runc).
    #[default]
    Runc,
    /// gVisor's user-space kernel (`runsc`).
    Gvisor,
}

/// Every class, in the order they are listed.
pub const ALL_RUNTIME_CLASSES: [RuntimeClass; 2] = [RuntimeClass::Runc, RuntimeClass::Gvisor];

impl RuntimeClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Runc => "runc",
            Self::Gvisor => "gvisor",
        }
    }
}

impl fmt::Display for RuntimeClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no runtime class.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a runtime class (runc, gvisor)")]
pub struct UnknownRuntimeClass(pub String);

impl FromStr for RuntimeClass {
    type Err = UnknownRuntimeClass;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_RUNTIME_CLASSES
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownRuntimeClass(s.chars().take(64).collect()))
    }
}

/// The classes an account may use and the one its groups get when they name none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeClassPolicy {
    /// Sorted, without duplicates, never empty.
    pub allowed: Vec<RuntimeClass>,
    /// `None`: the node's default.
    #[serde(default)]
    pub default: Option<RuntimeClass>,
}

/// A policy that contradicts itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("a runtime class policy must allow at least one class")]
    Empty,
    #[error("the default runtime class {0} is not among the allowed ones")]
    DefaultNotAllowed(RuntimeClass),
}

impl RuntimeClassPolicy {
    pub fn new(
        mut allowed: Vec<RuntimeClass>,
        default: Option<RuntimeClass>,
    ) -> Result<Self, PolicyError> {
        allowed.sort();
        allowed.dedup();
        if allowed.is_empty() {
            return Err(PolicyError::Empty);
        }
        if let Some(d) = default.filter(|d| !allowed.contains(d)) {
            return Err(PolicyError::DefaultNotAllowed(d));
        }
        Ok(Self { allowed, default })
    }

    pub fn allows(&self, class: RuntimeClass) -> bool {
        self.allowed.contains(&class)
    }

    /// The class of a group that asked for `asked`: what it asked, else the account's default,
    /// else `node_default`.
    pub fn resolve(&self, asked: Option<RuntimeClass>, node_default: RuntimeClass) -> RuntimeClass {
        asked.or(self.default).unwrap_or(node_default)
    }
}

impl Default for RuntimeClassPolicy {
    /// Every class allowed, the node's default used.
    fn default() -> Self {
        Self {
            allowed: ALL_RUNTIME_CLASSES.to_vec(),
            default: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_named() {
        for c in ALL_RUNTIME_CLASSES {
            assert_eq!(c.as_str().parse::<RuntimeClass>(), Ok(c));
        }
        let err = "kata".parse::<RuntimeClass>().unwrap_err();
        assert!(err.to_string().contains("\"kata\""), "{err}");
        assert!("Gvisor".parse::<RuntimeClass>().is_err());
    }

    #[test]
    fn policy_checks_its_default_and_resolves() {
        assert_eq!(
            RuntimeClassPolicy::new(vec![], None),
            Err(PolicyError::Empty)
        );
        assert_eq!(
            RuntimeClassPolicy::new(vec![RuntimeClass::Runc], Some(RuntimeClass::Gvisor)),
            Err(PolicyError::DefaultNotAllowed(RuntimeClass::Gvisor))
        );
        let p = RuntimeClassPolicy::new(
            vec![
                RuntimeClass::Gvisor,
                RuntimeClass::Runc,
                RuntimeClass::Gvisor,
            ],
            Some(RuntimeClass::Gvisor),
        )
        .unwrap();
        assert_eq!(p.allowed, vec![RuntimeClass::Runc, RuntimeClass::Gvisor]);
        assert_eq!(p.resolve(None, RuntimeClass::Runc), RuntimeClass::Gvisor);
        assert_eq!(
            p.resolve(Some(RuntimeClass::Runc), RuntimeClass::Gvisor),
            RuntimeClass::Runc
        );
        let open = RuntimeClassPolicy::default();
        assert_eq!(open.resolve(None, RuntimeClass::Runc), RuntimeClass::Runc);
        let only = RuntimeClassPolicy::new(vec![RuntimeClass::Runc], None).unwrap();
        assert!(!only.allows(RuntimeClass::Gvisor));
    }
}
