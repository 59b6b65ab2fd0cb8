//! DescribeUsage over the signed API: the caller's own bill, 403 for another account's or
//! everyone's unless the key's account is an operator's, and refusals by name.

mod common;

use std::sync::Arc;

use berth_client::{Client, ClientError, UsageParams};
use berth_core::{GroupId, GroupRecord, GroupSpec, GroupStatus};
use berth_store::{AccessKey, SqliteStore, Store};
use chrono::Utc;
use common::{p, serve_on, NullNode};

fn group(n: u8, account: &str) -> GroupRecord {
    GroupRecord {
        ..GroupRecord::new(
            GroupId::from_random([n; 20]),
            account,
            GroupSpec {
                name: format!("g{n}"),
                cpu: 1.0,
                memory: 2.0,
                ..Default::default()
            },
            Utc::now(),
        )
    }
}

fn status_code(e: ClientError) -> (u16, String, String) {
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

#[tokio::test]
async fn own_bill_others_refused_operator_sees_all() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let s = serve_on(store.clone(), Arc::new(NullNode)).await;
    store
        .create_access_key(&AccessKey {
            account: "other".into(),
            access_key_id: "AKOTHER".into(),
            secret: "other-secret".into(),
        })
        .await
        .unwrap();
    let other = Client::new(&s.endpoint, "AKOTHER", "other-secret")
        .unwrap()
        .with_region("local");
    for (n, acct) in [(1, "acct"), (2, "other")] {
        let g = group(n, acct);
        store.insert_group(&g).await.unwrap();
        store
            .modify_group(&g.id, &mut |r| r.status = GroupStatus::Running)
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        store
            .modify_group(&g.id, &mut |r| r.status = GroupStatus::Succeeded)
            .await
            .unwrap();
    }
    let mine = s
        .client
        .describe_usage(&UsageParams::default())
        .await
        .unwrap();
    assert_eq!(mine.account_id, "acct");
    assert_eq!(mine.currency, "CNY");
    let keys: Vec<&str> = mine.lines.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(keys, [group(1, "acct").id.as_str()]);
    assert_eq!(mine.lines[0].name, "g1");

    for asked in ["acct", "*"] {
        let e = other
            .describe_usage(&UsageParams {
                account_id: Some(asked.into()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        let (status, code, message) = status_code(e);
        assert_eq!((status, code.as_str()), (403, "Forbidden.Operator"));
        assert!(message.contains("AccountId"), "{message}");
    }

    store.set_account_operator("other", true).await.unwrap();
    let theirs = other
        .describe_usage(&UsageParams {
            account_id: Some("acct".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(theirs.lines, mine.lines);
    let all = other
        .describe_usage(&UsageParams {
            account_id: Some("*".into()),
            group_by: Some("account".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let accounts: Vec<&str> = all.lines.iter().map(|l| l.account_id.as_str()).collect();
    assert_eq!(accounts, ["acct", "other"]);
    assert_eq!(all.account_id, "*");
}

#[tokio::test]
async fn bad_parameters_are_named() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let s = serve_on(store, Arc::new(NullNode)).await;
    for (k, v) in [
        ("GroupBy", "week"),
        ("Since", "not-a-time"),
        ("AccountId", "a/b"),
    ] {
        let e = s
            .client
            .call("DescribeUsage", &p(&[(k, v)]))
            .await
            .unwrap_err();
        let (status, code, message) = status_code(e);
        assert_eq!((status, code.as_str()), (400, "InvalidParameter"), "{k}");
        assert!(message.contains(k), "{k}: {message}");
    }
}
