//! What the server's loopback tests share: a control plane on an in-memory SQLite store with
//! one access key, served over HTTP on a free port, and a signing client for it.

#![allow(dead_code)]

use std::sync::Arc;

use berth_client::Client;
use berth_control::{Control, NodeClient};
use berth_store::{AccessKey, SqliteStore, Store};

/// The operator's token that opens `/metrics` of the served API.
pub const METRICS_TOKEN: &str = "metrics-token-for-tests";

/// A served control plane and a client signed with its key.
pub struct Served {
    pub client: Client,
    pub control: Arc<Control>,
    pub endpoint: String,
}

/// Serves a control plane backed by `node` on 127.0.0.1.
pub async fn serve_with(node: Arc<dyn NodeClient>) -> Served {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    serve_on(store, node).await
}

/// Serves a control plane on `store`, backed by `node`, with the key `AKTEST` of account
/// `acct` added to the store.
pub async fn serve_on(store: Arc<dyn Store>, node: Arc<dyn NodeClient>) -> Served {
    serve_throttled(store, node, berth_server::ThrottleConfig::default()).await
}

/// [`serve_on`] with the given throttling limits.
pub async fn serve_throttled(
    store: Arc<dyn Store>,
    node: Arc<dyn NodeClient>,
    throttle: berth_server::ThrottleConfig,
) -> Served {
    store
        .create_access_key(&AccessKey {
            account: "acct".into(),
            access_key_id: "AKTEST".into(),
            secret: "s3cret".into(),
        })
        .await
        .unwrap();
    let control = Control::new(store, "local");
    control.attach_node(node);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    let state = berth_server::AppState::new(control.clone())
        .with_throttle(throttle)
        .with_metrics_token(METRICS_TOKEN);
    tokio::spawn(berth_server::serve(listener, state, std::future::pending()));
    let client = Client::new(&endpoint, "AKTEST", "s3cret")
        .unwrap()
        .with_region("local");
    Served {
        client,
        control,
        endpoint,
    }
}

/// Request parameters from string pairs.
pub fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A node that accepts everything and runs nothing: for tests of the API alone.
pub struct NullNode;

impl berth_control::NodeObserve for NullNode {}
impl berth_control::CacheNode for NullNode {}

#[async_trait::async_trait]
impl NodeClient for NullNode {
    async fn apply(&self, _rec: berth_core::GroupRecord) {}
    async fn remove(
        &self,
        _id: &berth_core::GroupId,
        _grace: std::time::Duration,
    ) -> Result<(), berth_control::NodeError> {
        Ok(())
    }
    async fn read_log(
        &self,
        _id: &berth_core::GroupId,
        _req: &berth_control::LogRequest,
    ) -> Result<String, berth_control::NodeError> {
        Ok(String::new())
    }
}
