//! Groups in both stores: filters, pagination, atomic changes; and SQLite against real files:
//! persistence, reads from many threads, records handed out shared.

use berth_core::{normalize_size, GroupId, GroupRecord, GroupSpec, GroupStatus, Tag};
use berth_store::{AccessKey, GroupFilter, SqliteStore, Store};

mod common;
use common::TestStore;

on_both!(
    list_filters_and_pages,
    list_searches_names_and_pages_newest_first,
    lists_only_what_changed_since,
    concurrent_changes_of_one_group_lose_none,
    totals_follow_every_insert_and_delete,
    nul_characters_are_kept_and_looked_up_like_any_other,
);
use chrono::Utc;

fn record(n: u8, name: &str, status: GroupStatus) -> GroupRecord {
    let size = normalize_size(None, None).unwrap();
    GroupRecord {
        status,
        client_token: Some(format!("tok{n}")),
        ..GroupRecord::new(
            GroupId::from_random([n; 20]),
            "acct",
            GroupSpec {
                name: name.into(),
                region_id: "local".into(),
                cpu: size.cpu,
                memory: size.memory,
                tags: vec![Tag {
                    key: "k".into(),
                    value: format!("v{}", n % 2),
                }],
                ..Default::default()
            },
            Utc::now(),
        )
    }
}

#[tokio::test]
async fn keys_and_groups_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        s.create_access_key(&AccessKey {
            account: "acct".into(),
            access_key_id: "AK".into(),
            secret: "S".into(),
        })
        .await
        .unwrap();
        s.insert_group(&record(1, "one", GroupStatus::Scheduling))
            .await
            .unwrap();
        assert!(s
            .insert_group(&record(1, "one", GroupStatus::Scheduling))
            .await
            .is_err());
    }
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.access_key("AK").await.unwrap().unwrap().secret, "S");
    assert!(s.access_key("nope").await.unwrap().is_none());
    let id = GroupId::from_random([1; 20]);
    let got = s.get_group(Some("acct"), &id).await.unwrap().unwrap();
    assert_eq!(got.spec.name, "one");
    assert!(s.get_group(Some("other"), &id).await.unwrap().is_none());
    let changed = s
        .modify_group(&id, &mut |r| r.status = GroupStatus::Running)
        .await
        .unwrap();
    assert_eq!(changed.status, GroupStatus::Running);
    assert_eq!(
        s.get_group(None, &id).await.unwrap().unwrap().status,
        GroupStatus::Running
    );
    s.delete_group(&id).await.unwrap();
    assert!(s.get_group(None, &id).await.unwrap().is_none());
    assert!(s.modify_group(&id, &mut |_| {}).await.is_err());
}

async fn list_filters_and_pages(s: TestStore) {
    for n in 1..=5 {
        let st = if n <= 3 {
            GroupStatus::Running
        } else {
            GroupStatus::Failed
        };
        s.insert_group(&record(n, &format!("g{n}"), st))
            .await
            .unwrap();
    }
    let all = GroupFilter::default();
    let p1 = s.list_groups("acct", &all, 2, None).await.unwrap();
    assert_eq!(p1.total, 5);
    assert_eq!(p1.groups.len(), 2);
    let p2 = s
        .list_groups("acct", &all, 2, p1.next_token.as_deref())
        .await
        .unwrap();
    assert_eq!(p2.groups[0].spec.name, "g3");
    let p3 = s
        .list_groups("acct", &all, 2, p2.next_token.as_deref())
        .await
        .unwrap();
    assert_eq!(p3.groups.len(), 1);
    assert!(p3.next_token.is_none());
    let running = GroupFilter {
        status: Some(GroupStatus::Running),
        ..Default::default()
    };
    assert_eq!(
        s.list_groups("acct", &running, 20, None)
            .await
            .unwrap()
            .total,
        3
    );
    // One query for every group that has not ended, and one for those that have; the
    // unfiltered count (which the embedded store remembers) is not confused with them.
    for (ended, names) in [
        (false, ["g1", "g2", "g3"].as_slice()),
        (true, &["g4", "g5"]),
    ] {
        let f = GroupFilter {
            ended: Some(ended),
            ..Default::default()
        };
        let page = s.list_groups("acct", &f, 2, None).await.unwrap();
        assert_eq!(page.total, names.len() as u64, "ended={ended}");
        let mut got: Vec<String> = page.groups.iter().map(|g| g.spec.name.clone()).collect();
        let mut token = page.next_token;
        while let Some(t) = token {
            let p = s.list_groups("acct", &f, 2, Some(&t)).await.unwrap();
            got.extend(p.groups.iter().map(|g| g.spec.name.clone()));
            token = p.next_token;
        }
        assert_eq!(got, names, "ended={ended}");
    }
    assert_eq!(s.list_groups("acct", &all, 2, None).await.unwrap().total, 5);
    let named = GroupFilter {
        name: Some("g4".into()),
        ..Default::default()
    };
    assert_eq!(
        s.list_groups("acct", &named, 20, None)
            .await
            .unwrap()
            .groups
            .len(),
        1
    );
    let ids = GroupFilter {
        ids: vec![GroupId::from_random([2; 20]).to_string()],
        ..Default::default()
    };
    assert_eq!(
        s.list_groups("acct", &ids, 20, None).await.unwrap().groups[0]
            .spec
            .name,
        "g2"
    );
    let tagged = GroupFilter {
        tags: vec![("k".into(), Some("v1".into()))],
        ..Default::default()
    };
    let t = s.list_groups("acct", &tagged, 2, None).await.unwrap();
    assert_eq!(t.total, 3);
    assert_eq!(t.groups.len(), 2);
    assert!(t.next_token.is_some());
    assert_eq!(
        s.list_groups("other", &all, 20, None).await.unwrap().total,
        0
    );
}

async fn list_searches_names_and_pages_newest_first(s: TestStore) {
    for n in 1..=5 {
        let name = if n % 2 == 0 {
            format!("Web-{n}")
        } else {
            format!("db-{n}")
        };
        s.insert_group(&record(n, &name, GroupStatus::Running))
            .await
            .unwrap();
    }
    let names = |p: &berth_store::Page| -> Vec<String> {
        p.groups.iter().map(|g| g.spec.name.clone()).collect()
    };
    let newest = GroupFilter {
        newest_first: true,
        ..Default::default()
    };
    let p1 = s.list_groups("acct", &newest, 2, None).await.unwrap();
    assert_eq!(names(&p1), ["db-5", "Web-4"]);
    assert_eq!(p1.total, 5);
    let p2 = s
        .list_groups("acct", &newest, 2, p1.next_token.as_deref())
        .await
        .unwrap();
    assert_eq!(names(&p2), ["db-3", "Web-2"]);
    let p3 = s
        .list_groups("acct", &newest, 2, p2.next_token.as_deref())
        .await
        .unwrap();
    assert_eq!(names(&p3), ["db-1"]);
    assert!(p3.next_token.is_none());

    let web = GroupFilter {
        name_contains: Some("web".into()),
        newest_first: true,
        ..Default::default()
    };
    let w1 = s.list_groups("acct", &web, 1, None).await.unwrap();
    assert_eq!(names(&w1), ["Web-4"]);
    assert_eq!(w1.total, 2);
    let w2 = s
        .list_groups("acct", &web, 1, w1.next_token.as_deref())
        .await
        .unwrap();
    assert_eq!(names(&w2), ["Web-2"]);
    assert!(w2.next_token.is_none());
    let tagged_newest = GroupFilter {
        tags: vec![("k".into(), None)],
        newest_first: true,
        ..Default::default()
    };
    let t = s
        .list_groups("acct", &tagged_newest, 2, None)
        .await
        .unwrap();
    assert_eq!(names(&t), ["db-5", "Web-4"]);
    let t2 = s
        .list_groups("acct", &tagged_newest, 2, t.next_token.as_deref())
        .await
        .unwrap();
    assert_eq!(names(&t2), ["db-3", "Web-2"]);
    let none = GroupFilter {
        name_contains: Some("%".into()),
        ..Default::default()
    };
    assert_eq!(
        s.list_groups("acct", &none, 20, None).await.unwrap().total,
        0
    );
}

#[tokio::test]
async fn reads_from_many_threads_see_every_committed_write() {
    let dir = tempfile::tempdir().unwrap();
    let s = std::sync::Arc::new(SqliteStore::open(&dir.path().join("berth.db")).unwrap());
    s.create_access_key(&AccessKey {
        account: "acct".into(),
        access_key_id: "AK".into(),
        secret: "S".into(),
    })
    .await
    .unwrap();
    let all = GroupFilter::default();
    for n in 1..=20u8 {
        s.insert_group(&record(n, &format!("g{n}"), GroupStatus::Running))
            .await
            .unwrap();
        // The remembered count follows every insert.
        assert_eq!(
            s.list_groups("acct", &all, 5, None).await.unwrap().total,
            n as u64
        );
    }
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let s = std::sync::Arc::clone(&s);
            tokio::spawn(async move {
                for i in 0..50u8 {
                    let n = (t * 50 + i) % 20 + 1;
                    let id = GroupId::from_random([n; 20]);
                    let got = s.get_group(Some("acct"), &id).await.unwrap().unwrap();
                    assert_eq!(got.spec.name, format!("g{n}"));
                    assert_eq!(s.access_key("AK").await.unwrap().unwrap().account, "acct");
                    let page = s
                        .list_groups("acct", &GroupFilter::default(), 5, None)
                        .await;
                    assert_eq!(page.unwrap().total, 20);
                }
            })
        })
        .collect();
    for t in threads {
        t.await.unwrap();
    }
    let id = GroupId::from_random([7; 20]);
    let listed = |s: std::sync::Arc<SqliteStore>| {
        let id = id.clone();
        async move {
            let page = s
                .list_groups("acct", &GroupFilter::default(), 50, None)
                .await;
            page.unwrap()
                .groups
                .into_iter()
                .find(|g| g.id == id)
                .unwrap()
        }
    };
    let before = listed(s.clone()).await;
    assert_eq!(before.status, GroupStatus::Running);
    // An unchanged record is handed out shared, not copied.
    assert!(std::sync::Arc::ptr_eq(&before, &listed(s.clone()).await));
    s.modify_group(&id, &mut |r| r.status = GroupStatus::Failed)
        .await
        .unwrap();
    // A listing after a change returns the changed record, never a remembered one.
    let after = listed(s.clone()).await;
    assert_eq!(after.status, GroupStatus::Failed);
    assert!(!std::sync::Arc::ptr_eq(&before, &after));
    assert_eq!(
        before.status,
        GroupStatus::Running,
        "a record handed out never changes"
    );
    assert_eq!(
        s.get_group(None, &id).await.unwrap().unwrap().status,
        GroupStatus::Failed
    );
    s.delete_group(&id).await.unwrap();
    assert!(s.get_group(Some("acct"), &id).await.unwrap().is_none());
    let page = s.list_groups("acct", &all, 50, None).await.unwrap();
    assert_eq!((page.total, page.groups.len()), (19, 19));
    assert_eq!(
        s.list_groups("other", &all, 5, None).await.unwrap().total,
        0
    );
}

async fn lists_only_what_changed_since(s: TestStore) {
    for n in 1..=3 {
        s.insert_group(&record(n, &format!("g{n}"), GroupStatus::Running))
            .await
            .unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mark = Utc::now();
    let since = |t| GroupFilter {
        changed_since: Some(t),
        ..Default::default()
    };
    assert_eq!(
        s.list_groups("acct", &since(mark), 20, None)
            .await
            .unwrap()
            .total,
        0
    );
    // A write that changes nothing is no change.
    s.modify_group(&GroupId::from_random([1; 20]), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        s.list_groups("acct", &since(mark), 20, None)
            .await
            .unwrap()
            .total,
        0
    );
    s.modify_group(&GroupId::from_random([2; 20]), &mut |r| {
        r.status = GroupStatus::Failed
    })
    .await
    .unwrap();
    s.insert_group(&record(4, "g4", GroupStatus::Scheduling))
        .await
        .unwrap();
    let page = s.list_groups("acct", &since(mark), 20, None).await.unwrap();
    let names: Vec<&str> = page.groups.iter().map(|g| g.spec.name.as_str()).collect();
    assert_eq!(names, ["g2", "g4"]);
    assert_eq!(page.total, 2);
    // Combined with the other filters, and per account.
    let failed = GroupFilter {
        status: Some(GroupStatus::Failed),
        ..since(mark)
    };
    assert_eq!(
        s.list_groups("acct", &failed, 20, None)
            .await
            .unwrap()
            .total,
        1
    );
    assert_eq!(
        s.list_groups("other", &since(mark), 20, None)
            .await
            .unwrap()
            .total,
        0
    );
    let before = mark - chrono::Duration::seconds(60);
    assert_eq!(
        s.list_groups("acct", &since(before), 20, None)
            .await
            .unwrap()
            .total,
        4
    );
}

async fn concurrent_changes_of_one_group_lose_none(s: TestStore) {
    // Two stores on one database: the changes race through two sets of connections.
    let stores = [s.arc(), s.another().await];
    let rec = record(1, "g", GroupStatus::Running);
    stores[0].insert_group(&rec).await.unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let s = std::sync::Arc::clone(&stores[n % 2]);
            let id = rec.id.clone();
            tokio::spawn(async move {
                let mut runs = 0;
                let got = s
                    .modify_group(&id, &mut |r| {
                        runs += 1;
                        r.restart_generation += 1;
                    })
                    .await
                    .unwrap();
                (runs, got.restart_generation)
            })
        })
        .collect();
    let mut reruns = 0;
    for t in tasks {
        let (runs, _) = t.await.unwrap();
        reruns += runs - 1;
    }
    let end = stores[1].get_group(None, &rec.id).await.unwrap().unwrap();
    // Every change counted once, whatever ran again on a newer record.
    assert_eq!(end.restart_generation, 40, "{reruns} changes ran again");
}

async fn totals_follow_every_insert_and_delete(s: TestStore) {
    let all = GroupFilter::default();
    for n in 1..=7u8 {
        s.insert_group(&record(n, &format!("g{n}"), GroupStatus::Running))
            .await
            .unwrap();
        assert_eq!(
            s.list_groups("acct", &all, 2, None).await.unwrap().total,
            u64::from(n)
        );
    }
    // A failed insert counts nothing.
    assert!(s
        .insert_group(&record(3, "again", GroupStatus::Running))
        .await
        .is_err());
    for n in [2u8, 5] {
        s.delete_group(&GroupId::from_random([n; 20]))
            .await
            .unwrap();
    }
    // Deleting what is gone counts nothing either.
    s.delete_group(&GroupId::from_random([2; 20]))
        .await
        .unwrap();
    let page = s.list_groups("acct", &all, 2, None).await.unwrap();
    assert_eq!((page.total, page.groups.len()), (5, 2));
    let next = page.next_token.as_deref();
    let rest = s.list_groups("acct", &all, 10, next).await.unwrap();
    assert_eq!((rest.total, rest.groups.len()), (5, 3));
    assert_eq!(
        s.list_groups("other", &all, 2, None).await.unwrap().total,
        0
    );
}

async fn nul_characters_are_kept_and_looked_up_like_any_other(s: TestStore) {
    use berth_core::{TagChange, TagResourceType};
    // Tags and other free text of a tenant may hold NUL; lookups by such strings find nothing
    // (no id, name or key holds one) and are no error.
    let mut rec = record(1, "g1", GroupStatus::Running);
    rec.spec.tags = vec![Tag {
        key: "k\0ey".into(),
        value: "v\0".into(),
    }];
    s.insert_group(&rec).await.unwrap();
    let back = s.get_group(Some("acct"), &rec.id).await.unwrap().unwrap();
    assert_eq!(back.spec.tags, rec.spec.tags);
    let by_tag = |v: Option<&str>| GroupFilter {
        tags: vec![("k\0ey".into(), v.map(str::to_string))],
        ..Default::default()
    };
    assert_eq!(
        s.list_groups("acct", &by_tag(Some("v\0")), 5, None)
            .await
            .unwrap()
            .groups
            .len(),
        1
    );
    assert_eq!(
        s.list_groups("acct", &by_tag(None), 5, None)
            .await
            .unwrap()
            .groups
            .len(),
        1
    );
    assert!(s
        .list_groups("acct", &by_tag(Some("v")), 5, None)
        .await
        .unwrap()
        .groups
        .is_empty());
    for filter in [
        GroupFilter {
            name: Some("g\u{0}1".into()),
            ..Default::default()
        },
        GroupFilter {
            name_contains: Some("\0".into()),
            ..Default::default()
        },
        GroupFilter {
            ids: vec!["eci-\0".into()],
            ..Default::default()
        },
    ] {
        let page = s.list_groups("acct", &filter, 5, None).await.unwrap();
        assert_eq!((page.total, page.groups.len()), (0, 0), "{filter:?}");
    }
    // A NUL id beside a real one: the real one is listed.
    let both = GroupFilter {
        ids: vec!["eci-\0".into(), rec.id.to_string()],
        ..Default::default()
    };
    assert_eq!(
        s.list_groups("acct", &both, 5, None).await.unwrap().total,
        1
    );
    assert!(s.check_access_key("AK\0").await.unwrap().is_none());
    assert!(s
        .get_group(Some("ac\0ct"), &rec.id)
        .await
        .unwrap()
        .is_none());
    assert!(s.get_cache(None, "imc-\0").await.unwrap().is_none());
    assert!(matches!(
        s.modify_cache("imc-\0", &mut |_| {}).await,
        Err(berth_store::StoreError::NotFound(_))
    ));
    s.delete_cache("imc-\0").await.unwrap();
    let set = TagChange::Set(vec![Tag {
        key: "a".into(),
        value: "b".into(),
    }]);
    let ids = [rec.id.to_string(), "eci-\0".into()];
    assert!(matches!(
        s.change_tags("acct", TagResourceType::ContainerGroup, &ids, &set).await,
        Err(berth_store::StoreError::NotFound(id)) if id == "eci-\0"
    ));
    assert_eq!(
        s.get_group(None, &rec.id)
            .await
            .unwrap()
            .unwrap()
            .spec
            .tags
            .len(),
        1
    );
    let q = berth_store::TagQuery {
        ids: vec!["eci-\0".into()],
        tags: vec![],
    };
    let page = s
        .list_tags("acct", TagResourceType::ContainerGroup, &q, 10, None)
        .await
        .unwrap();
    assert!(page.rows.is_empty());
    assert_eq!(s.console_session("\0").await.unwrap(), None);
}
