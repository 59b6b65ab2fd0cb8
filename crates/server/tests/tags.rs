//! TagResources, UntagResources and ListTagResources over the signed API: tags show in
//! DescribeContainerGroups, listings page with an opaque token, and refusals change nothing.

mod common;

use std::sync::Arc;

use berth_client::ClientError;
use berth_store::{SqliteStore, Store};
use common::{p, serve_on, NullNode};
use serde_json::Value;

fn code(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, code, .. } => (status, code),
        e => panic!("not an API error: {e}"),
    }
}

#[tokio::test]
async fn tag_list_untag_through_the_api() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let served = serve_on(store, Arc::new(NullNode)).await;
    let c = &served.client;
    let mut ids = vec![];
    for name in ["one", "two"] {
        let v = c
            .call(
                "CreateContainerGroup",
                &p(&[
                    ("ContainerGroupName", name),
                    ("Container.1.Name", "c1"),
                    ("Container.1.Image", "busybox"),
                    ("Tag.1.Key", "env"),
                    ("Tag.1.Value", "dev"),
                ]),
            )
            .await
            .unwrap();
        ids.push(v["ContainerGroupId"].as_str().unwrap().to_string());
    }
    let group = |id: &str| ("ResourceId.1".to_string(), id.to_string());
    let mut q = p(&[
        ("ResourceType", "ContainerGroup"),
        ("ResourceId.2", &ids[1]),
        ("Tag.1.Key", "team"),
        ("Tag.1.Value", "web"),
        ("Tag.2.Key", "env"),
        ("Tag.2.Value", "prod"),
    ]);
    q.push(group(&ids[0]));
    c.call("TagResources", &q).await.unwrap();

    let d = c
        .call(
            "DescribeContainerGroups",
            &p(&[("Tag.1.Key", "team"), ("Tag.1.Value", "web")]),
        )
        .await
        .unwrap();
    assert_eq!(d["TotalCount"], 2, "{d}");
    let tags = &d["ContainerGroups"][0]["Tags"];
    assert_eq!(
        tags,
        &serde_json::json!([{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "web"}])
    );

    // Four rows in pages of three (Limit is a string in the SDK models).
    let list = |token: Option<String>| {
        let mut q = p(&[("ResourceType", "ContainerGroup"), ("Limit", "3")]);
        if let Some(t) = token {
            q.push(("NextToken".into(), t));
        }
        q
    };
    let first = c.call("ListTagResources", &list(None)).await.unwrap();
    assert_eq!(
        first["TagResources"].as_array().unwrap().len(),
        3,
        "{first}"
    );
    assert_eq!(first["TagResources"][0]["ResourceType"], "ContainerGroup");
    let token = first["NextToken"].as_str().unwrap().to_string();
    assert!(!token.is_empty());
    let second = c
        .call("ListTagResources", &list(Some(token)))
        .await
        .unwrap();
    assert_eq!(
        second["TagResources"].as_array().unwrap().len(),
        1,
        "{second}"
    );
    assert_eq!(second["NextToken"], "");
    for bad in ["junk", "1.zz.00", "-1..", "1.2.3.4"] {
        let e = c
            .call("ListTagResources", &list(Some(bad.into())))
            .await
            .unwrap_err();
        assert_eq!(code(e), (400, "InvalidParameter".into()), "{bad}");
    }

    // A batch with a missing id changes nothing.
    let mut q = p(&[("ResourceType", "ContainerGroup"), ("All", "true")]);
    q.push(group(&ids[0]));
    q.push(("ResourceId.2".into(), "eci-000000000000000000000".into()));
    let e = c.call("UntagResources", &q).await.unwrap_err();
    assert_eq!(code(e).0, 404);
    let rows = |v: &Value| v["TagResources"].as_array().unwrap().len();
    let all = p(&[("ResourceType", "ContainerGroup"), ("Limit", "50")]);
    assert_eq!(rows(&c.call("ListTagResources", &all).await.unwrap()), 4);

    let mut q = p(&[("ResourceType", "ContainerGroup"), ("TagKey.1", "team")]);
    q.push(group(&ids[0]));
    c.call("UntagResources", &q).await.unwrap();
    let v = c.call("ListTagResources", &all).await.unwrap();
    assert_eq!(rows(&v), 3, "{v}");

    // Twenty tags at most per resource: nothing of a refused batch is written.
    let mut q: Vec<(String, String)> = (1..=20)
        .map(|i| (format!("Tag.{i}.Key"), format!("k{i}")))
        .collect();
    q.extend(p(&[("ResourceType", "ContainerGroup")]));
    q.push(group(&ids[0]));
    let e = c.call("TagResources", &q).await.unwrap_err();
    assert_eq!(code(e), (400, "QuotaExceeded.Tag".into()));
    assert_eq!(rows(&c.call("ListTagResources", &all).await.unwrap()), 3);

    let e = c
        .call("ListTagResources", &p(&[("ResourceType", "DataCache")]))
        .await
        .unwrap_err();
    assert_eq!(code(e), (400, "InvalidParameter".into()));
}
