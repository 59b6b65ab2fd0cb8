//! The runtime class of a new group: the node's classes and default (`berth serve`), the
//! account's policy (store), and the decision at create.

use berth_core::RuntimeClass;

use crate::{Control, ControlError};

/// The runtime classes of the node, as the control plane decides a group's class.
#[derive(Clone, Debug)]
pub struct NodeClasses {
    pub supported: Vec<RuntimeClass>,
    pub default: RuntimeClass,
}

impl Default for NodeClasses {
    /// The `runc` class alone.
    fn default() -> Self {
        Self {
            supported: vec![RuntimeClass::Runc],
            default: RuntimeClass::Runc,
        }
    }
}

impl Control {
    /// Sets which runtime classes the node runs and the node's default class.
    pub fn set_node_classes(&self, classes: NodeClasses) {
        *self.classes.write().unwrap_or_else(|p| p.into_inner()) = classes;
    }

    /// Decides the class of a new group of `account`: the one asked for, else the account's
    /// default, else the node's; refused when the account may not use it or the node does
    /// not run it.
    pub(crate) async fn decide_runtime_class(
        &self,
        account: &str,
        asked: Option<RuntimeClass>,
    ) -> Result<RuntimeClass, ControlError> {
        let policy = self.store.account_runtime_classes(account).await?;
        let node = self
            .classes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let class = policy.resolve(asked, node.default);
        if !policy.allows(class) {
            return Err(ControlError::RuntimeClassForbidden {
                class,
                allowed: join(&policy.allowed),
            });
        }
        if !node.supported.contains(&class) {
            return Err(ControlError::RuntimeClassUnsupported(
                class,
                join(&node.supported),
            ));
        }
        Ok(class)
    }
}

fn join(classes: &[RuntimeClass]) -> String {
    classes
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use berth_core::RuntimeClassPolicy;
    use berth_store::{SqliteStore, Store};

    use super::*;

    #[tokio::test]
    async fn the_class_is_asked_or_the_accounts_or_the_nodes_and_must_be_allowed_and_run() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        store.create_account("a").await.unwrap();
        let control = Control::new(store.clone(), "local");
        // The node runs runc only until told otherwise.
        assert!(matches!(
            control
                .decide_runtime_class("a", Some(RuntimeClass::Gvisor))
                .await,
            Err(ControlError::RuntimeClassUnsupported(
                RuntimeClass::Gvisor,
                _
            ))
        ));
        control.set_node_classes(NodeClasses {
            supported: vec![RuntimeClass::Runc, RuntimeClass::Gvisor],
            default: RuntimeClass::Runc,
        });
        assert_eq!(
            control.decide_runtime_class("a", None).await.unwrap(),
            RuntimeClass::Runc
        );
        let gvisor_only =
            RuntimeClassPolicy::new(vec![RuntimeClass::Gvisor], Some(RuntimeClass::Gvisor))
                .unwrap();
        store
            .set_account_runtime_classes("a", &gvisor_only)
            .await
            .unwrap();
        assert_eq!(
            control.decide_runtime_class("a", None).await.unwrap(),
            RuntimeClass::Gvisor
        );
        let refused = control
            .decide_runtime_class("a", Some(RuntimeClass::Runc))
            .await
            .unwrap_err();
        assert!(matches!(
            refused,
            ControlError::RuntimeClassForbidden {
                class: RuntimeClass::Runc,
                ..
            }
        ));
        assert!(refused.to_string().contains("allowed: gvisor"), "{refused}");
    }
}
