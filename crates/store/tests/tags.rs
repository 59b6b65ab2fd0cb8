//! TagResources/UntagResources/ListTagResources in the store: a batch changes all or
//! nothing, only the account's own resources, `billed_groups` in step, and listings page
//! through every tag once.

use berth_core::{
    GroupId, GroupRecord, GroupSpec, GroupStatus, ImageCacheRecord, Tag, TagChange, TagResourceType,
};
use berth_store::{Store, StoreError, TagCursor, TagQuery};

mod common;
use common::TestStore;

on_both!(
    a_batch_with_a_foreign_or_missing_id_changes_nothing,
    a_batch_where_one_resource_would_exceed_twenty_tags_changes_nothing,
    retag_and_untag_keep_billed_groups_in_step,
    listing_pages_through_every_tag_once_and_filters_by_tags,
    image_caches_are_tagged_and_listed_per_account,
    concurrent_batches_in_any_order_all_apply,
);
use chrono::{Duration, Utc};

const GROUP: TagResourceType = TagResourceType::ContainerGroup;

fn tag(k: &str, v: &str) -> Tag {
    Tag {
        key: k.into(),
        value: v.into(),
    }
}

fn record(n: u8, account: &str, tags: Vec<Tag>) -> GroupRecord {
    GroupRecord {
        ..GroupRecord::new(
            GroupId::from_random([n; 20]),
            account,
            GroupSpec {
                name: format!("g{n}"),
                region_id: "local".into(),
                cpu: 1.0,
                memory: 2.0,
                tags,
                ..Default::default()
            },
            Utc::now(),
        )
    }
}

async fn tags_of(s: &dyn Store, r: &GroupRecord) -> Vec<Tag> {
    s.get_group(None, &r.id).await.unwrap().unwrap().spec.tags
}

fn ids(rs: &[&GroupRecord]) -> Vec<String> {
    rs.iter().map(|r| r.id.to_string()).collect()
}

async fn a_batch_with_a_foreign_or_missing_id_changes_nothing(s: TestStore) {
    let mine = record(1, "a", vec![tag("env", "dev")]);
    let theirs = record(2, "b", vec![tag("env", "prod")]);
    s.insert_group(&mine).await.unwrap();
    s.insert_group(&theirs).await.unwrap();
    let set = TagChange::Set(vec![tag("team", "x")]);

    let err = s
        .change_tags("a", GROUP, &ids(&[&mine, &theirs]), &set)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(ref id) if *id == theirs.id.to_string()));
    let err = s
        .change_tags("a", GROUP, &[mine.id.to_string(), "eci-nope".into()], &set)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
    assert_eq!(tags_of(&*s, &mine).await, vec![tag("env", "dev")]);
    assert_eq!(tags_of(&*s, &theirs).await, vec![tag("env", "prod")]);

    // B cannot untag A's group either, nor list its tags.
    let err = s
        .change_tags("b", GROUP, &ids(&[&mine]), &TagChange::RemoveAll)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
    assert_eq!(tags_of(&*s, &mine).await, vec![tag("env", "dev")]);
    let q = TagQuery {
        ids: ids(&[&mine]),
        tags: vec![],
    };
    assert!(s
        .list_tags("b", GROUP, &q, 50, None)
        .await
        .unwrap()
        .rows
        .is_empty());

    s.change_tags("a", GROUP, &ids(&[&mine, &mine]), &set)
        .await
        .unwrap();
    assert_eq!(
        tags_of(&*s, &mine).await,
        vec![tag("env", "dev"), tag("team", "x")]
    );
}

async fn a_batch_where_one_resource_would_exceed_twenty_tags_changes_nothing(s: TestStore) {
    let full = record(
        1,
        "a",
        (0..19).map(|i| tag(&format!("k{i}"), "v")).collect(),
    );
    let empty = record(2, "a", vec![]);
    s.insert_group(&empty).await.unwrap();
    s.insert_group(&full).await.unwrap();
    let set = TagChange::Set(vec![tag("x", "1"), tag("y", "2")]);
    let err = s
        .change_tags("a", GROUP, &ids(&[&empty, &full]), &set)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooManyTags { count: 21, .. }));
    assert!(
        tags_of(&*s, &empty).await.is_empty(),
        "the first of the batch was rolled back"
    );
    assert_eq!(tags_of(&*s, &full).await.len(), 19);
}

async fn retag_and_untag_keep_billed_groups_in_step(s: TestStore) {
    let g = record(1, "a", vec![tag("team", "old")]);
    s.insert_group(&g).await.unwrap();
    s.modify_group(&g.id, &mut |r| r.status = GroupStatus::Running)
        .await
        .unwrap();
    let set = TagChange::Set(vec![tag("team", "new"), tag("cost", "c1")]);
    s.change_tags("a", GROUP, &ids(&[&g]), &set).await.unwrap();
    let now = Utc::now();
    let bill_tags = async |s: &dyn Store| {
        let l = s
            .ledger(
                Some("a"),
                now - Duration::hours(1),
                now + Duration::hours(1),
            )
            .await
            .unwrap();
        assert!(!l.is_empty(), "a running group has a billed period");
        l[0].tags.clone()
    };
    assert_eq!(
        bill_tags(&*s).await,
        vec![tag("team", "new"), tag("cost", "c1")]
    );
    s.change_tags(
        "a",
        GROUP,
        &ids(&[&g]),
        &TagChange::Remove(vec!["team".into()]),
    )
    .await
    .unwrap();
    assert_eq!(bill_tags(&*s).await, vec![tag("cost", "c1")]);
    // After the delete, the bill keeps the last tags.
    s.delete_group(&g.id).await.unwrap();
    assert_eq!(bill_tags(&*s).await, vec![tag("cost", "c1")]);
}

async fn listing_pages_through_every_tag_once_and_filters_by_tags(s: TestStore) {
    let a = record(1, "a", vec![tag("z", "1"), tag("env", "dev"), tag("m", "")]);
    let b = record(2, "a", vec![tag("env", "prod")]);
    let c = record(3, "a", vec![tag("env", "dev"), tag("team", "t")]);
    let other = record(4, "b", vec![tag("env", "dev")]);
    for r in [&a, &b, &c, &other] {
        s.insert_group(r).await.unwrap();
    }
    let all = async |q: &TagQuery, limit: usize| {
        let mut out = vec![];
        let mut after: Option<TagCursor> = None;
        loop {
            let page = s
                .list_tags("a", GROUP, q, limit, after.as_ref())
                .await
                .unwrap();
            assert!(page.rows.len() <= limit);
            out.extend(
                page.rows
                    .into_iter()
                    .map(|r| format!("{}:{}={}", &r.resource_id[..6], r.key, r.value)),
            );
            match page.next {
                // What a client gets back is the encoded token.
                Some(n) => after = Some(TagCursor::parse(&n.encode()).unwrap()),
                None => return out,
            }
        }
    };
    let everything = all(&TagQuery::default(), 50).await;
    assert_eq!(everything.len(), 6);
    for limit in 1..=6 {
        assert_eq!(
            all(&TagQuery::default(), limit).await,
            everything,
            "limit {limit}"
        );
    }
    let sorted: Vec<String> = [
        (&a, "env=dev"),
        (&a, "m="),
        (&a, "z=1"),
        (&b, "env=prod"),
        (&c, "env=dev"),
        (&c, "team=t"),
    ]
    .iter()
    .map(|(r, kv)| format!("{}:{kv}", &r.id.to_string()[..6]))
    .collect();
    assert_eq!(everything, sorted);

    // Every given tag must be carried; a key alone matches any value.
    let q = TagQuery {
        ids: vec![],
        tags: vec![("env".into(), Some("dev".into())), ("team".into(), None)],
    };
    assert_eq!(
        all(&q, 1).await.len(),
        2,
        "only c carries both: its two tags"
    );
    let q = TagQuery {
        ids: vec![],
        tags: vec![("env".into(), None)],
    };
    assert_eq!(all(&q, 2).await.len(), 6);
    let q = TagQuery {
        ids: ids(&[&b, &other]),
        tags: vec![],
    };
    assert_eq!(
        all(&q, 50).await.len(),
        1,
        "the other account's group is not listed"
    );
}

async fn image_caches_are_tagged_and_listed_per_account(s: TestStore) {
    let cache = |id: &str, account: &str| ImageCacheRecord {
        id: id.into(),
        account: account.into(),
        name: id.into(),
        images: vec!["busybox".into()],
        creation_time: Utc::now(),
        tags: vec![tag("a", "1")],
        ..Default::default()
    };
    s.insert_cache(&cache("imc-1", "a"), "").await.unwrap();
    s.insert_cache(&cache("imc-2", "b"), "").await.unwrap();
    let kind = TagResourceType::ImageCache;
    let set = TagChange::Set(vec![tag("b", "2")]);
    let err = s
        .change_tags("a", kind, &["imc-1".into(), "imc-2".into()], &set)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::CacheNotFound(ref id) if id == "imc-2"));
    assert_eq!(
        s.get_cache(None, "imc-1")
            .await
            .unwrap()
            .unwrap()
            .tags
            .len(),
        1
    );
    s.change_tags("a", kind, &["imc-1".into()], &set)
        .await
        .unwrap();
    assert_eq!(
        s.get_cache(None, "imc-1").await.unwrap().unwrap().tags,
        vec![tag("a", "1"), tag("b", "2")]
    );
    let page = s
        .list_tags("a", kind, &TagQuery::default(), 50, None)
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 2);
    assert!(page.rows.iter().all(|r| r.resource_id == "imc-1"));
    // A group id listed as an image cache is nothing.
    let q = TagQuery {
        ids: vec!["imc-1".into()],
        tags: vec![],
    };
    assert!(s
        .list_tags("a", GROUP, &q, 50, None)
        .await
        .unwrap()
        .rows
        .is_empty());
}

async fn concurrent_batches_in_any_order_all_apply(s: TestStore) {
    let (a, b) = (record(1, "a", vec![]), record(2, "a", vec![]));
    s.insert_group(&a).await.unwrap();
    s.insert_group(&b).await.unwrap();
    let stores = [s.arc(), s.another().await];
    // Batches naming the same groups in both orders, through two sets of connections.
    let tasks: Vec<_> = (0..10usize)
        .map(|i| {
            let st = std::sync::Arc::clone(&stores[i % 2]);
            let order = if i % 2 == 0 {
                ids(&[&a, &b])
            } else {
                ids(&[&b, &a])
            };
            tokio::spawn(async move {
                let set = TagChange::Set(vec![tag(&format!("k{i}"), "v")]);
                st.change_tags("a", GROUP, &order, &set).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for g in [&a, &b] {
        assert_eq!(tags_of(&*s, g).await.len(), 10);
    }
}
