//! `berth ps`: the account's container groups, without the ended ones unless `-a`, with
//! docker's `--filter` spelling turned into DescribeContainerGroups' own filters (`Status`,
//! `ContainerGroupName`, `Tag.N`), so that the server does the filtering; without `-a`,
//! the groups that have not ended are asked for with berth's `Ended=false` in one query (so
//! that a group changing status meanwhile is not missed), and the ended ones (which
//! accumulate) are never fetched.

use std::collections::BTreeSet;

use anyhow::bail;
use berth_client::response::ContainerGroup;
use berth_client::{Client, DescribeParams};
use berth_core::GroupStatus;

use crate::cli::{client, ClientArgs};
use crate::ui::table::Cell;
use crate::ui::{Format, Table};

/// Most DescribeContainerGroups queries one `ps` makes for its `status=` and `name=` values
/// (the API takes one of each per query).
const MAX_QUERIES: usize = 60;

#[derive(clap::Args)]
pub struct PsArgs {
    /// Also the ended groups (Succeeded, Failed, ScheduleFailed, Expired).
    #[arg(short = 'a', long)]
    all: bool,
    /// status=STATUS, name=NAME (exact) or tag:KEY=VALUE (tag:KEY: any value); repeatable:
    /// values of one kind are alternatives, kinds must all hold. A status filter shows
    /// ended groups too.
    #[arg(long = "filter", value_name = "FILTER", value_parser = parse_filter)]
    filters: Vec<Filter>,
    /// Only groups in this status (the same as --filter status=STATUS).
    #[arg(long, value_parser = parse_status)]
    status: Option<GroupStatus>,
    /// Only the ids, one a line.
    #[arg(short = 'q', long, conflicts_with = "output")]
    quiet: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    output: Format,
}

/// One `--filter`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    Status(GroupStatus),
    Name(String),
    Tag { key: String, value: Option<String> },
}

fn parse_status(s: &str) -> Result<GroupStatus, String> {
    GroupStatus::parse(s).ok_or_else(|| {
        format!(
            "`{s}` is not a status: Scheduling, ScheduleFailed, Pending, Running, Succeeded, \
             Failed, Restarting, Updating, Terminating or Expired"
        )
    })
}

fn parse_filter(text: &str) -> Result<Filter, String> {
    if let Some(tag) = text.strip_prefix("tag:") {
        let (key, value) = match tag.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (tag, None),
        };
        if key.is_empty() {
            return Err(format!("`{text}`: the tag key is empty"));
        }
        return Ok(Filter::Tag {
            key: key.to_string(),
            value,
        });
    }
    match text.split_once('=') {
        Some(("status", s)) => parse_status(s).map(Filter::Status),
        Some(("name", n)) if !n.is_empty() => Ok(Filter::Name(n.to_string())),
        _ => Err(format!(
            "`{text}` is not status=STATUS, name=NAME, tag:KEY=VALUE or tag:KEY"
        )),
    }
}

/// The DescribeContainerGroups queries of the filters: one per pair of a status and a
/// name asked for, each with every tag filter; `ended` is sent as is (berth's `Ended`).
fn queries(filters: &[Filter], ended: Option<bool>) -> anyhow::Result<Vec<Vec<(String, String)>>> {
    let statuses: BTreeSet<&str> = filters
        .iter()
        .filter_map(|f| match f {
            Filter::Status(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    let names: BTreeSet<&str> = filters
        .iter()
        .filter_map(|f| match f {
            Filter::Name(n) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    let mut tags: Vec<(String, String)> = Vec::new();
    for f in filters {
        if let Filter::Tag { key, value } = f {
            let i = tags.iter().filter(|(k, _)| k.ends_with(".Key")).count() + 1;
            tags.push((format!("Tag.{i}.Key"), key.clone()));
            if let Some(v) = value {
                tags.push((format!("Tag.{i}.Value"), v.clone()));
            }
        }
    }
    let statuses: Vec<Option<&str>> = if statuses.is_empty() {
        vec![None]
    } else {
        statuses.into_iter().map(Some).collect()
    };
    let names: Vec<Option<&str>> = if names.is_empty() {
        vec![None]
    } else {
        names.into_iter().map(Some).collect()
    };
    if statuses.len() * names.len() > MAX_QUERIES {
        bail!("at most {MAX_QUERIES} combinations of status= and name= filters");
    }
    let mut out = Vec::new();
    for s in &statuses {
        for n in &names {
            let mut q = DescribeParams {
                name: n.map(str::to_string),
                status: s.and_then(GroupStatus::parse),
                limit: Some(20),
                ended,
                ..DescribeParams::default()
            }
            .to_query();
            q.extend(tags.iter().cloned());
            out.push(q);
        }
    }
    Ok(out)
}

/// Every group one query matches, page after page.
async fn all_pages(c: &Client, q: &[(String, String)]) -> anyhow::Result<Vec<ContainerGroup>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    // 20 a page: 10,000 pages are 200,000 groups, far above any quota.
    for _ in 0..10_000 {
        let mut q = q.to_vec();
        if let Some(t) = &token {
            q.push(("NextToken".into(), t.clone()));
        }
        let page: berth_client::response::DescribeContainerGroupsResponse =
            c.call_as("DescribeContainerGroups", &q).await?;
        out.extend(page.container_groups);
        if page.next_token.is_empty() {
            return Ok(out);
        }
        token = Some(page.next_token);
    }
    bail!("the listing did not end after 10,000 pages")
}

pub async fn ps(a: &ClientArgs, mut r: PsArgs) -> anyhow::Result<()> {
    if let Some(s) = r.status {
        r.filters.push(Filter::Status(s));
    }
    let by_status = r.filters.iter().any(|f| matches!(f, Filter::Status(_)));
    let ended = (!r.all && !by_status).then_some(false);
    let c = client(a)?;
    let mut groups: Vec<ContainerGroup> = Vec::new();
    let mut seen = BTreeSet::new();
    for q in queries(&r.filters, ended)? {
        for g in all_pages(&c, &q).await? {
            if seen.insert(g.container_group_id.clone()) {
                groups.push(g);
            }
        }
    }
    // Newest first, as docker lists.
    groups.sort_by(|x, y| y.creation_time.cmp(&x.creation_time));
    if r.quiet {
        for g in &groups {
            println!("{}", g.container_group_id);
        }
        return Ok(());
    }
    if crate::ui::format::print_document(r.output, &groups)? {
        return Ok(());
    }
    table(&groups, chrono::Utc::now()).print();
    Ok(())
}

fn table(groups: &[ContainerGroup], now: chrono::DateTime<chrono::Utc>) -> Table {
    let mut t = Table::new(&[
        "ID", "NAME", "STATUS", "IP", "CPU", "MEMORY", "RESTARTS", "CREATED",
    ]);
    for g in groups {
        let restarts: u32 = g.containers.iter().map(|c| c.restart_count).sum();
        t.row(vec![
            g.container_group_id.clone().into(),
            g.container_group_name.clone().into(),
            Cell::status(&g.status),
            g.intranet_ip.clone().into(),
            format!("{}", g.cpu).into(),
            format!("{} GiB", g.memory).into(),
            restarts.to_string().into(),
            crate::ui::time::ago(&g.creation_time, now).into(),
        ]);
    }
    t
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> ContainerGroup {
        let mut g = ContainerGroup {
            container_group_id: "eci-0123456789abcdefghij".into(),
            container_group_name: "web".into(),
            region_id: "local".into(),
            status: "Running".into(),
            cpu: 0.5,
            memory: 1.0,
            intranet_ip: "10.213.0.2".into(),
            creation_time: "2026-12-04T12:00:00Z".into(),
            restart_policy: "Always".into(),
            ..Default::default()
        };
        g.containers.push(berth_client::response::ContainerInfo {
            name: "web".into(),
            image: "127.0.0.1:5000/busybox:latest".into(),
            restart_count: 2,
            ready: true,
            current_state: berth_client::response::ContainerStateInfo {
                state: Some("Running".into()),
                start_time: Some("2026-12-04T12:00:01Z".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        g
    }

    #[test]
    fn filters_parse_in_dockers_spelling() {
        assert_eq!(
            parse_filter("status=Running"),
            Ok(Filter::Status(GroupStatus::Running))
        );
        assert_eq!(parse_filter("name=web"), Ok(Filter::Name("web".into())));
        assert_eq!(
            parse_filter("tag:team=a=b"),
            Ok(Filter::Tag {
                key: "team".into(),
                value: Some("a=b".into())
            })
        );
        assert_eq!(
            parse_filter("tag:team"),
            Ok(Filter::Tag {
                key: "team".into(),
                value: None
            })
        );
        for bad in ["status=running", "name=", "tag:", "tag:=x", "label=x", "x"] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_become_the_apis_own() {
        let f = |t: &str| parse_filter(t).unwrap();
        let q = queries(&[f("name=web"), f("tag:team=a"), f("tag:env")], None).unwrap();
        assert_eq!(q.len(), 1);
        let has = |k: &str, v: &str| q[0].iter().any(|(a, b)| a == k && b == v);
        assert!(has("ContainerGroupName", "web"), "{q:?}");
        assert!(has("Tag.1.Key", "team") && has("Tag.1.Value", "a"), "{q:?}");
        assert!(has("Tag.2.Key", "env"), "{q:?}");
        assert!(!q[0]
            .iter()
            .any(|(k, _)| k == "Tag.2.Value" || k == "Status"));
        let q = queries(
            &[f("status=Running"), f("status=Failed"), f("name=a")],
            None,
        )
        .unwrap();
        assert_eq!(q.len(), 2);
        assert!(q.iter().all(|q| q.iter().any(|(k, _)| k == "Status")));
        // Without -a: one query for every group not ended, whatever its status.
        let q = queries(&[f("name=a"), f("name=b")], Some(false)).unwrap();
        assert_eq!(q.len(), 2);
        assert!(q
            .iter()
            .all(|q| q.iter().any(|(k, v)| k == "Ended" && v == "false")
                && !q.iter().any(|(k, _)| k == "Status")));
        assert_eq!(queries(&[], Some(false)).unwrap().len(), 1);
        let many: Vec<Filter> = (0..61).map(|i| Filter::Name(format!("n{i}"))).collect();
        assert!(queries(&many, None).is_err());
    }

    #[test]
    fn json_shape() {
        let doc = crate::ui::format::document(Format::Json, &[sample()]).unwrap();
        insta::assert_snapshot!(doc.unwrap());
    }

    #[test]
    fn table_rows() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-04T12:05:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        insta::assert_snapshot!(table(&[sample()], now).render(false));
    }
}
