//! The ECI endpoint over real HTTP on loopback, with a SQLite store and a recording node:
//! signatures, replay, errors that change nothing, and the group lifecycle as the API shows it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_client::{Client, ClientError};
use berth_control::{Control, LogRequest, NodeClient, NodeError, NodeObserve};
use berth_core::{ContainerState, ContainerStatus, GroupId, GroupRecord, ObservedGroup};
use chrono::Utc;

mod common;
use common::{p, serve_with};

#[derive(Default)]
struct FakeNode {
    applied: Mutex<Vec<GroupRecord>>,
    removed: Mutex<Vec<GroupId>>,
}

impl NodeObserve for FakeNode {}

#[async_trait]
impl NodeClient for FakeNode {
    async fn apply(&self, rec: GroupRecord) {
        self.applied.lock().unwrap().push(rec);
    }
    async fn remove(&self, id: &GroupId, _grace: Duration) -> Result<(), NodeError> {
        self.removed.lock().unwrap().push(id.clone());
        Ok(())
    }
    async fn read_log(&self, _id: &GroupId, req: &LogRequest) -> Result<String, NodeError> {
        Ok(format!(
            "log of {} tail={:?} previous={}\n",
            req.container, req.tail, req.previous
        ))
    }
}

impl berth_control::CacheNode for FakeNode {}

struct Api {
    client: Client,
    control: Arc<Control>,
    node: Arc<FakeNode>,
    endpoint: String,
}

async fn start() -> Api {
    let node = Arc::new(FakeNode::default());
    let served = serve_with(node.clone()).await;
    Api {
        client: served.client,
        control: served.control,
        node,
        endpoint: served.endpoint,
    }
}

fn create_params(name: &str) -> Vec<(String, String)> {
    p(&[
        ("ContainerGroupName", name),
        ("RestartPolicy", "Never"),
        ("Container.1.Name", "c1"),
        ("Container.1.Image", "127.0.0.1:5000/busybox:latest"),
        ("Container.1.Cpu", "0.5"),
        ("Container.1.Memory", "1.0"),
        ("Container.1.Command.1", "sleep"),
        ("Container.1.Command.2", "60"),
    ])
}

fn api_err(e: ClientError) -> (u16, String, String) {
    match e {
        ClientError::Api {
            status,
            code,
            message,
            request_id,
        } => {
            assert!(!request_id.is_empty());
            assert!(message.contains(':'), "message without a colon: {message}");
            (status, code, message)
        }
        other => panic!("not an API error: {other}"),
    }
}

async fn count(api: &Api) -> u64 {
    let v = api
        .client
        .call("DescribeContainerGroups", &[])
        .await
        .unwrap();
    v["TotalCount"].as_u64().unwrap()
}

#[tokio::test]
async fn create_describe_delete() {
    let api = start().await;
    let v = api
        .client
        .call("CreateContainerGroup", &create_params("web"))
        .await
        .unwrap();
    let id = v["ContainerGroupId"].as_str().unwrap().to_string();
    assert!(berth_core::is_group_id(&id), "{id}");
    assert!(v["RequestId"].as_str().is_some_and(|r| r.len() == 36));
    assert_eq!(api.node.applied.lock().unwrap().len(), 1);

    let ids = serde_json::to_string(&[&id]).unwrap();
    let v = api
        .client
        .call(
            "DescribeContainerGroups",
            &p(&[("ContainerGroupIds", &ids)]),
        )
        .await
        .unwrap();
    let g = &v["ContainerGroups"][0];
    assert_eq!(g["Status"], "Scheduling");
    assert_eq!(g["Cpu"], 0.5);
    assert_eq!(g["Memory"], 1.0);
    assert_eq!(
        g["Containers"][0]["Commands"],
        serde_json::json!(["sleep", "60"])
    );

    // A node report moves the group to Running.
    let gid = GroupId::parse(&id).unwrap();
    api.control
        .report(
            &gid,
            ObservedGroup {
                intranet_ip: Some("10.213.0.9".into()),
                containers: vec![ContainerStatus {
                    name: "c1".into(),
                    current: ContainerState::running(Utc::now()),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .await;
    let v = api
        .client
        .call("DescribeContainerGroups", &p(&[("Status", "Running")]))
        .await
        .unwrap();
    assert_eq!(v["TotalCount"], 1);
    assert_eq!(v["ContainerGroups"][0]["IntranetIp"], "10.213.0.9");

    let v = api
        .client
        .call(
            "DescribeContainerLog",
            &p(&[
                ("ContainerGroupId", &id),
                ("ContainerName", "c1"),
                ("Tail", "5"),
                ("LastTime", "True"),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(v["Content"], "log of c1 tail=Some(5) previous=true\n");
    let e = api
        .client
        .call(
            "DescribeContainerLog",
            &p(&[("ContainerGroupId", &id), ("ContainerName", "nope")]),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(e).0, 404);

    api.client
        .call("DeleteContainerGroup", &p(&[("ContainerGroupId", &id)]))
        .await
        .unwrap();
    for _ in 0..100 {
        if count(&api).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(count(&api).await, 0);
    assert_eq!(api.node.removed.lock().unwrap().as_slice(), &[gid]);
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let api = start().await;
    type Case = (Vec<(String, String)>, u16, &'static str);
    let cases: Vec<Case> = vec![
        (p(&[("ContainerGroupName", "x1")]), 400, "MissingParameter"),
        (
            create_params("web")
                .into_iter()
                .map(|(k, v)| {
                    if k == "RestartPolicy" {
                        (k, "Sometimes".into())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            400,
            "InvalidParameter",
        ),
        (create_params("Bad_Name"), 400, "InvalidParameter"),
        (
            create_params("web")
                .into_iter()
                .map(|(k, v)| {
                    if k == "Container.1.Cpu" {
                        (k, "lots".into())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            400,
            "InvalidParameter",
        ),
    ];
    for (params, status, code) in cases {
        let e = api
            .client
            .call("CreateContainerGroup", &params)
            .await
            .unwrap_err();
        let (st, c, msg) = api_err(e);
        assert_eq!((st, c.as_str()), (status, code), "{msg}");
    }
    assert_eq!(count(&api).await, 0);
    assert!(api.node.applied.lock().unwrap().is_empty());

    let e = api
        .client
        .call(
            "DeleteContainerGroup",
            &p(&[("ContainerGroupId", "eci-aaaaaaaaaaaaaaaaaaaa")]),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(e).0, 404);
    let e = api
        .client
        .call(
            "RestartContainerGroup",
            &p(&[("ContainerGroupId", "not-an-id")]),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(e).0, 404);
    let e = api.client.call("NoSuchAction", &[]).await.unwrap_err();
    assert_eq!(api_err(e).0, 404);

    let wrong = Client::new(&api.endpoint, "AKTEST", "wrong").unwrap();
    let (st, code, _) = api_err(
        wrong
            .call("DescribeContainerGroups", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!((st, code.as_str()), (400, "SignatureDoesNotMatch"));
    let unknown = Client::new(&api.endpoint, "AKNOPE", "s3cret").unwrap();
    let (st, code, _) = api_err(
        unknown
            .call("DescribeContainerGroups", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!((st, code.as_str()), (404, "InvalidAccessKeyId.NotFound"));
}

#[tokio::test]
async fn replayed_and_stale_requests_are_refused() {
    let api = start().await;
    let http = reqwest::Client::new();
    let send = |req: berth_client::PreparedRequest| {
        let mut b = http.post(&req.url);
        for (k, v) in &req.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        async move {
            let r = b.send().await.unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value =
                serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            (status, body)
        }
    };
    let params = create_params("replay");
    let req = api
        .client
        .prepare("CreateContainerGroup", &params, Utc::now(), "nonce-1");
    let (st, _) = send(req.clone()).await;
    assert_eq!(st, 200);
    let (st, body) = send(req).await;
    assert_eq!(
        (st, body["Code"].as_str().unwrap()),
        (400, "SignatureNonceUsed")
    );
    let old = Utc::now() - chrono::Duration::minutes(16);
    let (st, body) = send(
        api.client
            .prepare("DescribeContainerGroups", &[], old, "nonce-2"),
    )
    .await;
    assert_eq!(
        (st, body["Code"].as_str().unwrap()),
        (400, "InvalidTimeStamp.Expired")
    );
    assert_eq!(count(&api).await, 1);
}

#[tokio::test]
async fn client_token_makes_create_idempotent_and_pages_work() {
    let api = start().await;
    let mut with_token = create_params("tok");
    with_token.push(("ClientToken".into(), "abc".into()));
    let a = api
        .client
        .call("CreateContainerGroup", &with_token)
        .await
        .unwrap();
    let b = api
        .client
        .call("CreateContainerGroup", &with_token)
        .await
        .unwrap();
    assert_eq!(a["ContainerGroupId"], b["ContainerGroupId"]);
    for i in 0..4 {
        api.client
            .call("CreateContainerGroup", &create_params(&format!("g{i}")))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let mut q = p(&[("Limit", "2")]);
        if !token.is_empty() {
            q.push(("NextToken".into(), token.clone()));
        }
        let v = api
            .client
            .call("DescribeContainerGroups", &q)
            .await
            .unwrap();
        assert_eq!(v["TotalCount"], 5);
        for g in v["ContainerGroups"].as_array().unwrap() {
            seen.push(g["ContainerGroupName"].as_str().unwrap().to_string());
        }
        token = v["NextToken"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, vec!["tok", "g0", "g1", "g2", "g3"]);
    let v = api
        .client
        .call(
            "DescribeContainerGroups",
            &p(&[("ContainerGroupName", "g2")]),
        )
        .await
        .unwrap();
    assert_eq!(v["TotalCount"], 1);
    let v = api.client.call("DescribeRegions", &[]).await.unwrap();
    assert_eq!(v["Regions"][0]["RegionId"], "local");
}

#[tokio::test]
async fn capabilities_outside_the_allow_list_are_refused_and_create_nothing() {
    let api = start().await;
    let with_cap = |cap: &str| {
        let mut params = create_params("caps");
        params.push((
            "Container.1.SecurityContext.Capability.Add.1".into(),
            "NET_ADMIN".into(),
        ));
        params.push((
            "Container.1.SecurityContext.Capability.Add.2".into(),
            cap.into(),
        ));
        params
    };
    for cap in ["SYS_ADMIN", "CAP_SYS_MODULE", "bpf", "DAC_READ_SEARCH"] {
        let err = api
            .client
            .call("CreateContainerGroup", &with_cap(cap))
            .await
            .unwrap_err();
        let (status, code, message) = api_err(err);
        assert_eq!((status, code.as_str()), (400, "InvalidParameter"), "{cap}");
        assert!(message.contains("Capability.Add"), "{message}");
        assert!(
            message.contains(&berth_core::capability::canonical(cap)),
            "{message}"
        );
    }
    assert_eq!(count(&api).await, 0, "a refused create left a group");
    assert!(api.node.applied.lock().unwrap().is_empty());

    api.client
        .call("CreateContainerGroup", &with_cap("SYS_PTRACE"))
        .await
        .expect("an allowed capability");
    assert_eq!(count(&api).await, 1);

    // The operator's list replaces the default.
    api.control
        .set_capability_policy(berth_core::CapabilityPolicy::new(["NET_ADMIN"]));
    let err = api
        .client
        .call("CreateContainerGroup", &with_cap("SYS_PTRACE"))
        .await
        .unwrap_err();
    assert_eq!(api_err(err).1, "InvalidParameter");
}
