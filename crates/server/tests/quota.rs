//! Quotas over the API: each limit refuses a CreateContainerGroup with its code, the limit and
//! the use in the message, and creates nothing; an account's own limit set in the store counts
//! from the next request; ListUsage reports every limit.

use std::sync::Arc;
use std::time::Duration;

use berth_client::ClientError;
use berth_control::Quota;
use berth_store::{QuotaOverrides, SqliteStore, Store};

mod common;
use common::{p, serve_on, Served};

use common::NullNode as Node;

async fn start() -> (Served, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let served = serve_on(Arc::clone(&store), Arc::new(Node)).await;
    served.control.set_quota(Quota {
        max_cpu: 2.0,
        max_memory: 4.0,
        max_groups: 3,
        ..Quota::default()
    });
    (served, store)
}

async fn create(s: &Served, name: &str, cpu: &str, memory: &str) -> Result<String, ClientError> {
    let params = p(&[
        ("ContainerGroupName", name),
        ("RestartPolicy", "Never"),
        ("Container.1.Name", "c1"),
        ("Container.1.Image", "127.0.0.1:5000/busybox:latest"),
        ("Container.1.Cpu", cpu),
        ("Container.1.Memory", memory),
    ]);
    let v = s.client.call("CreateContainerGroup", &params).await?;
    Ok(v["ContainerGroupId"].as_str().unwrap().to_string())
}

fn refusal(e: ClientError) -> (u16, String, String) {
    match e {
        ClientError::Api {
            status,
            code,
            message,
            ..
        } => (status, code, message),
        other => panic!("not an API error: {other}"),
    }
}

async fn groups(s: &Served) -> u64 {
    let v = s.client.call("DescribeContainerGroups", &[]).await.unwrap();
    v["TotalCount"].as_u64().unwrap()
}

#[tokio::test]
async fn each_quota_refuses_with_its_code_and_creates_nothing() {
    let (s, _) = start().await;
    create(&s, "one", "1.0", "2.0").await.unwrap();

    let (st, code, msg) = refusal(create(&s, "cpu", "2.0", "1.0").await.unwrap_err());
    assert_eq!((st, code.as_str()), (400, "QuotaExceeded.Cpu"));
    assert!(msg.contains("may hold 2 vCPU and holds 1;"), "{msg}");
    assert!(msg.contains("asks for 2"), "{msg}");

    let (st, code, msg) = refusal(create(&s, "mem", "0.5", "4.0").await.unwrap_err());
    assert_eq!((st, code.as_str()), (400, "QuotaExceeded.Memory"));
    assert!(
        msg.contains("may hold 4 GiB of memory and holds 2;"),
        "{msg}"
    );

    create(&s, "two", "0.5", "1.0").await.unwrap();
    create(&s, "three", "0.25", "0.5").await.unwrap();
    let (st, code, msg) = refusal(create(&s, "four", "0.25", "0.5").await.unwrap_err());
    assert_eq!((st, code.as_str()), (400, "QuotaExceeded.ContainerGroup"));
    assert!(
        msg.contains("may hold 3 container groups and holds 3;"),
        "{msg}"
    );
    assert_eq!(groups(&s).await, 3);
}

#[tokio::test]
async fn an_accounts_own_quota_counts_from_the_next_request() {
    let (s, store) = start().await;
    create(&s, "one", "1.0", "1.0").await.unwrap();
    store
        .set_account_quota(
            "acct",
            &QuotaOverrides {
                cpu: Some(1.0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (_, code, msg) = refusal(create(&s, "two", "0.25", "0.5").await.unwrap_err());
    assert_eq!(code, "QuotaExceeded.Cpu");
    assert!(msg.contains("may hold 1 vCPU and holds 1;"), "{msg}");
    store
        .set_account_quota(
            "acct",
            &QuotaOverrides {
                cpu: Some(8.0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Above the server's default of 2: the account's own limit wins.
    create(&s, "two", "2.0", "1.0").await.unwrap();
}

#[tokio::test]
async fn a_deleted_group_frees_its_share() {
    let (s, _) = start().await;
    let id = create(&s, "one", "2.0", "1.0").await.unwrap();
    assert_eq!(
        refusal(create(&s, "two", "1.0", "1.0").await.unwrap_err()).1,
        "QuotaExceeded.Cpu"
    );
    s.client
        .call("DeleteContainerGroup", &p(&[("ContainerGroupId", &id)]))
        .await
        .unwrap();
    for _ in 0..100 {
        if groups(&s).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    create(&s, "two", "1.0", "1.0").await.unwrap();
}

#[tokio::test]
async fn list_usage_reports_every_quota() {
    let (s, store) = start().await;
    create(&s, "one", "1.0", "2.0").await.unwrap();
    create(&s, "two", "0.5", "1.0").await.unwrap();
    store
        .set_account_quota(
            "acct",
            &QuotaOverrides {
                groups: Some(7),
                image_caches: Some(4),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let v = s.client.call("ListUsage", &[]).await.unwrap();
    let a = &v["Attributes"];
    assert_eq!(a["UsedCpu"], 1.5);
    assert_eq!(a["MaxCpu"], 2);
    assert_eq!(a["UsedMemory"], 3);
    assert_eq!(a["MaxMemory"], 4);
    assert_eq!(a["UsedContainerGroupCount"], 2);
    assert_eq!(a["MaxContainerGroupCount"], 7);
    assert_eq!(a["MaxImageCacheCount"], 4);
}
