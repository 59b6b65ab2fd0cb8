//! The JSON text of each group in DescribeContainerGroups answers, kept while the store hands
//! out the same record.
//!
//! The first pages of the unfiltered list are asked for again and again, and their groups
//! rarely change. Building the response object of a group copies every string of its record and
//! serializing it escapes them all again; together that is most of the work of such a request.
//! The store shares an unchanged record between listings (one `Arc`), so the text made from it
//! last time is still right as long as the record is the same allocation: the entry holds that
//! `Arc`, so the allocation cannot be reused by another record while the entry lives. A record
//! that changed is a new allocation and is rendered again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_core::GroupRecord;
use berth_eci::response::ContainerGroup;

/// Most groups whose text is kept; it starts over when full (as the store's own memory does).
const MAX_RENDERED: usize = 1024;

/// Rendered `ContainerGroups[]` elements, by group id.
#[derive(Default)]
pub(crate) struct Rendered {
    by_id: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    rec: Arc<GroupRecord>,
    with_events: bool,
    json: Arc<str>,
}

impl Rendered {
    /// The JSON object of `rec` as an element of `ContainerGroups[]`, with its events when
    /// `with_events`: exactly what serializing [`ContainerGroup::from_record`] gives.
    pub(crate) fn group(
        &self,
        rec: &Arc<GroupRecord>,
        with_events: bool,
    ) -> Result<Arc<str>, serde_json::Error> {
        let id = rec.id.as_str();
        if let Some(e) = self.lock().get(id) {
            if Arc::ptr_eq(&e.rec, rec) && e.with_events == with_events {
                return Ok(Arc::clone(&e.json));
            }
        }
        let json: Arc<str> =
            serde_json::to_string(&ContainerGroup::from_record(rec, with_events))?.into();
        // Only a record the store remembers comes back as the same allocation; one decoded for
        // this answer alone (the caller holds the only reference) would never be asked for again.
        if Arc::strong_count(rec) > 1 {
            let mut by_id = self.lock();
            if by_id.len() >= MAX_RENDERED {
                by_id.clear();
            }
            by_id.insert(
                id.to_string(),
                Entry {
                    rec: Arc::clone(rec),
                    with_events,
                    json: Arc::clone(&json),
                },
            );
        }
        Ok(json)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // The map holds no invariant a panic could break.
        self.by_id.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The text of a DescribeContainerGroups answer, key for key what serializing
/// [`berth_eci::response::DescribeContainerGroupsResponse`] gives, with `groups` already
/// rendered.
pub(crate) fn describe_groups_text(
    request_id: &str,
    total_count: u64,
    next_token: &str,
    groups: &[Arc<str>],
) -> Result<String, serde_json::Error> {
    let len = groups.iter().map(|g| g.len() + 1).sum::<usize>();
    let mut out = String::with_capacity(len + request_id.len() + next_token.len() + 96);
    out.push_str("{\"RequestId\":");
    out.push_str(&serde_json::to_string(request_id)?);
    out.push_str(",\"TotalCount\":");
    out.push_str(&total_count.to_string());
    out.push_str(",\"NextToken\":");
    out.push_str(&serde_json::to_string(next_token)?);
    out.push_str(",\"ContainerGroups\":[");
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(g);
    }
    out.push_str("]}");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::{
        ContainerSpec, ContainerState, ContainerStatus, Event, EventType, GroupId, GroupSpec,
        GroupStatus, Tag,
    };
    use berth_eci::response::DescribeContainerGroupsResponse;
    use chrono::{TimeZone, Utc};

    fn record(n: u32) -> GroupRecord {
        let t = |s| Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, s).unwrap();
        let mut r = GroupRecord {
            status: GroupStatus::Running,
            intranet_ip: Some("10.0.0.2".into()),
            init_containers: Vec::new(),
            containers: vec![ContainerStatus {
                name: "app".into(),
                current: ContainerState::running(t(5)),
                ..Default::default()
            }],
            events: Vec::new(),
            ..GroupRecord::new(
                GroupId::parse(&format!("eci-abcdefghij01234567{n:02}")).unwrap(),
                "acct",
                GroupSpec {
                    name: format!("g\"{n}\u{e9}"),
                    region_id: "local".into(),
                    cpu: 0.5,
                    memory: 1.0,
                    containers: vec![ContainerSpec {
                        name: "app".into(),
                        image: "busybox".into(),
                        command: vec!["sh".into(), "-c".into(), "echo \"a\tb\"".into()],
                        ..Default::default()
                    }],
                    tags: vec![Tag {
                        key: "k".into(),
                        value: "v\\".into(),
                    }],
                    ..Default::default()
                },
                t(0),
            )
        };
        r.push_event(Event::new(
            EventType::Normal,
            "Started",
            "Started",
            Some("app"),
            t(5),
        ));
        r
    }

    /// The answer as serializing the response type gives it.
    fn serialized(
        rid: &str,
        total: u64,
        token: &str,
        recs: &[Arc<GroupRecord>],
        ev: bool,
    ) -> String {
        serde_json::to_string(&DescribeContainerGroupsResponse {
            request_id: rid.into(),
            total_count: total,
            next_token: token.into(),
            container_groups: recs
                .iter()
                .map(|r| ContainerGroup::from_record(r, ev))
                .collect(),
        })
        .unwrap()
    }

    fn rendered(
        r: &Rendered,
        rid: &str,
        total: u64,
        token: &str,
        recs: &[Arc<GroupRecord>],
        ev: bool,
    ) -> String {
        let groups: Vec<Arc<str>> = recs.iter().map(|g| r.group(g, ev).unwrap()).collect();
        describe_groups_text(rid, total, token, &groups).unwrap()
    }

    #[test]
    fn the_text_is_what_serializing_gives() {
        let r = Rendered::default();
        let recs: Vec<Arc<GroupRecord>> = (0..3).map(|n| Arc::new(record(n))).collect();
        let held = recs.clone(); // as the store holds what it remembers
        for ev in [false, true, false] {
            let want = serialized("RID-\"1", 10_000, "20", &recs, ev);
            assert_eq!(rendered(&r, "RID-\"1", 10_000, "20", &recs, ev), want);
        }
        assert_eq!(
            rendered(&r, "x", 0, "", &[], true),
            serialized("x", 0, "", &[], true)
        );
        drop(held);
    }

    #[test]
    fn a_changed_record_is_rendered_again() {
        let r = Rendered::default();
        let first = Arc::new(record(1));
        let held = Arc::clone(&first);
        let before = r.group(&first, false).unwrap();
        assert!(
            Arc::ptr_eq(&before, &r.group(&first, false).unwrap()),
            "kept"
        );
        // An equal record in another allocation (the row was written again) is not trusted.
        let again = Arc::new(record(1));
        let _held_again = Arc::clone(&again);
        assert!(!Arc::ptr_eq(&before, &r.group(&again, false).unwrap()));
        let mut changed = record(1);
        changed.status = GroupStatus::Failed;
        let changed = Arc::new(changed);
        let _held_changed = Arc::clone(&changed);
        let text = r.group(&changed, false).unwrap();
        assert!(text.contains("\"Status\":\"Failed\""), "{text}");
        assert!(before.contains("\"Status\":\"Running\""));
        drop(held);
    }

    #[test]
    fn a_record_nobody_else_holds_is_not_kept() {
        let r = Rendered::default();
        let alone = Arc::new(record(2));
        r.group(&alone, true).unwrap();
        assert!(r.lock().is_empty());
        let shared = Arc::clone(&alone);
        r.group(&shared, true).unwrap();
        assert_eq!(r.lock().len(), 1);
    }

    #[test]
    fn the_memory_starts_over_when_full() {
        let r = Rendered::default();
        let recs: Vec<Arc<GroupRecord>> = (0..MAX_RENDERED + 1)
            .map(|n| {
                let mut rec = record(0);
                rec.id = GroupId::parse(&format!("eci-{n:020}")).unwrap();
                Arc::new(rec)
            })
            .collect();
        let held = recs.clone();
        for g in &recs {
            r.group(g, false).unwrap();
        }
        assert_eq!(r.lock().len(), 1);
        drop(held);
    }
}
