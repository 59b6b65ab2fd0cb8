//! The list of container groups: filters (status, name search, tag), order, paging — all
//! answered by DescribeContainerGroups in the store's query (20 a page, `NameContains` and
//! `Order` are berth's extensions), with the cost so far of each group from DescribeUsage of
//! the page's groups (`ContainerGroupIds`, read group by group in the ledger). The
//! table's body is also served alone (`/console/groups/rows`), which the script fetches every
//! few seconds to keep it current without a reload.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_eci::response::{ContainerGroup, DescribeContainerGroupsResponse, DescribeUsageResponse};
use berth_eci::{Action, ApiError};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::{age, enc, num};
use crate::api::{call_as, kv};
use crate::auth::{signed, Signed};
use crate::page::{error_box, html_response, layout};
use crate::Console;

/// Statuses offered by the filter.
pub const STATUSES: &[&str] = &[
    "Scheduling",
    "ScheduleFailed",
    "Pending",
    "Running",
    "Succeeded",
    "Failed",
    "Restarting",
    "Updating",
    "Terminating",
    "Expired",
];

/// The list's query string.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub status: String,
    /// Text the name contains.
    #[serde(default)]
    pub q: String,
    /// `KEY` or `KEY=VALUE`.
    #[serde(default)]
    pub tag: String,
    /// `newest` (default) or `oldest`.
    #[serde(default)]
    pub order: String,
    /// The page's NextToken.
    #[serde(default)]
    pub page: String,
}

impl ListQuery {
    fn newest(&self) -> bool {
        self.order != "oldest"
    }

    /// The parameters of DescribeContainerGroups.
    pub fn params(&self) -> Vec<(String, String)> {
        let mut p = vec![
            kv("Limit", "20"),
            kv("Order", if self.newest() { "Newest" } else { "Oldest" }),
        ];
        if !self.status.is_empty() {
            p.push(kv("Status", &self.status));
        }
        if !self.q.trim().is_empty() {
            p.push(kv("NameContains", self.q.trim()));
        }
        let tag = self.tag.trim();
        if !tag.is_empty() {
            match tag.split_once('=') {
                Some((k, v)) => {
                    p.push(kv("Tag.1.Key", k.trim()));
                    p.push(kv("Tag.1.Value", v.trim()));
                }
                None => p.push(kv("Tag.1.Key", tag)),
            }
        }
        if !self.page.is_empty() {
            p.push(kv("NextToken", &self.page));
        }
        p
    }

    /// This query on another page (`None`: the first).
    fn with_page(&self, page: Option<&str>) -> String {
        format!(
            "?status={}&q={}&tag={}&order={}&page={}",
            enc(&self.status),
            enc(&self.q),
            enc(&self.tag),
            enc(&self.order),
            enc(page.unwrap_or(""))
        )
    }
}

/// One page of groups with their cost so far (by group id; absent when the bill could not be
/// read).
struct Listing {
    page: DescribeContainerGroupsResponse,
    cost: Option<HashMap<String, String>>,
    currency: String,
}

async fn load(c: &Console, who: &Signed, q: &ListQuery) -> Result<Listing, ApiError> {
    let page: DescribeContainerGroupsResponse =
        call_as(c, who, Action::DescribeContainerGroups, q.params()).await?;
    let now = Utc::now();
    // The bill of the page's groups alone: since the oldest of them was created (at most 400
    // days).
    let oldest = page
        .container_groups
        .iter()
        .filter_map(|g| DateTime::parse_from_rfc3339(&g.creation_time).ok())
        .map(|t| t.with_timezone(&Utc))
        .min()
        .map(|t| t.max(now - chrono::Duration::days(399)));
    let ids = serde_json::to_string(
        &page
            .container_groups
            .iter()
            .map(|g| g.container_group_id.as_str())
            .collect::<Vec<_>>(),
    )
    .map_err(ApiError::internal)?;
    let (cost, currency) = match oldest {
        Some(since) if since < now => {
            let bill: Result<DescribeUsageResponse, _> = call_as(
                c,
                who,
                Action::DescribeUsage,
                vec![
                    kv("GroupBy", "group"),
                    kv("ContainerGroupIds", ids),
                    kv("Since", (since - chrono::Duration::seconds(1)).to_rfc3339()),
                    kv("Until", now.to_rfc3339()),
                ],
            )
            .await;
            match bill {
                Ok(b) => (
                    Some(
                        b.lines
                            .into_iter()
                            .map(|l| (l.key, l.amounts.amount))
                            .collect(),
                    ),
                    b.currency,
                ),
                Err(e) => {
                    tracing::debug!(code = %e.code, "no cost for the console's list");
                    (None, String::new())
                }
            }
        }
        _ => (Some(HashMap::new()), String::new()),
    };
    Ok(Listing {
        page,
        cost,
        currency,
    })
}

fn restarts(g: &ContainerGroup) -> u32 {
    g.containers.iter().map(|c| c.restart_count).sum()
}

fn table_rows(l: &Listing) -> Markup {
    let now = Utc::now();
    html! {
        @for g in &l.page.container_groups {
            tr {
                td {
                    a href={ "/console/groups/" (g.container_group_id) } { (g.container_group_name) }
                    br; small.id { (g.container_group_id) }
                }
                td { span class={ "status s-" (g.status.to_ascii_lowercase()) } { (g.status) } }
                td { (g.intranet_ip) }
                td { (num(g.cpu)) " vCPU / " (num(g.memory)) " GiB" }
                td title=(g.creation_time) { (age(&g.creation_time, now)) }
                td { (restarts(g)) }
                td {
                    @match &l.cost {
                        Some(c) => { (c.get(&g.container_group_id).map_or("0", String::as_str)) " " (l.currency) }
                        None => { "—" }
                    }
                }
            }
        }
        @if l.page.container_groups.is_empty() {
            tr { td colspan="7" { "No container groups match." } }
        }
    }
}

fn filters(q: &ListQuery) -> Markup {
    html! {
        form.filters method="get" action="/console/groups" role="search" {
            div {
                label for="q" { "Name contains" }
                input id="q" name="q" type="search" value=(q.q) maxlength="128";
            }
            div {
                label for="status" { "Status" }
                select id="status" name="status" {
                    option value="" selected[q.status.is_empty()] { "Any" }
                    @for s in STATUSES {
                        option value=(s) selected[q.status == *s] { (s) }
                    }
                }
            }
            div {
                label for="tag" { "Tag (key or key=value)" }
                input id="tag" name="tag" value=(q.tag) maxlength="256";
            }
            div {
                label for="order" { "Sort" }
                select id="order" name="order" {
                    option value="newest" selected[q.newest()] { "Newest first" }
                    option value="oldest" selected[!q.newest()] { "Oldest first" }
                }
            }
            button type="submit" { "Apply" }
        }
    }
}

/// `GET /console/groups`.
pub async fn list(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let who = match signed(&c, &headers).await {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let listing = load(&c, &who, &q).await;
    let body = html! {
        p { a.button href="/console/groups/new" { "Create a container group" } }
        (filters(&q))
        @match &listing {
            Err(e) => (error_box(e)),
            Ok(l) => {
                p.count aria-live="polite" id="group-count" {
                    (l.page.total_count) " container groups match."
                }
                div.scroll {
                    table.groups {
                        caption.visually-hidden { "Container groups" }
                        thead { tr {
                            th scope="col" { "Name" }
                            th scope="col" { "Status" }
                            th scope="col" { "IP" }
                            th scope="col" { "Size" }
                            th scope="col" { "Age" }
                            th scope="col" { "Restarts" }
                            th scope="col" { "Cost so far" }
                        } }
                        tbody id="group-rows" data-poll={ "/console/groups/rows" (q.with_page(Some(&q.page))) } {
                            (table_rows(l))
                        }
                    }
                }
                nav.paging aria-label="Pages" {
                    @if !q.page.is_empty() {
                        a href={ "/console/groups" (q.with_page(None)) } { "First page" }
                    }
                    @if !l.page.next_token.is_empty() {
                        a rel="next" href={ "/console/groups" (q.with_page(Some(&l.page.next_token))) } { "Next page" }
                    }
                }
            }
        }
    };
    let status = match &listing {
        Err(e) => StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        Ok(_) => StatusCode::OK,
    };
    html_response(status, layout("Container groups", Some(&who), body))
}

/// `GET /console/groups/rows`: the table's rows alone, for the script's refresh.
pub async fn rows_fragment(c: &Console, who: &Signed, q: &ListQuery) -> Response {
    match load(c, who, q).await {
        Ok(l) => html_response(StatusCode::OK, table_rows(&l)),
        Err(e) => html_response(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            html! { tr { td colspan="7" { (error_box(&e)) } } },
        ),
    }
}

/// `GET /console/groups/rows`.
pub async fn rows_handler(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    match signed(&c, &headers).await {
        Ok(who) => rows_fragment(&c, &who, &q).await,
        Err(r) => r.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_becomes_the_apis_filters_and_paging() {
        let q = ListQuery {
            status: "Running".into(),
            q: " web ".into(),
            tag: "team=a".into(),
            order: "oldest".into(),
            page: "42".into(),
        };
        let p = q.params();
        for want in [
            ("Limit", "20"),
            ("Order", "Oldest"),
            ("Status", "Running"),
            ("NameContains", "web"),
            ("Tag.1.Key", "team"),
            ("Tag.1.Value", "a"),
            ("NextToken", "42"),
        ] {
            assert!(p.contains(&kv(want.0, want.1)), "{want:?} in {p:?}");
        }
        let bare = ListQuery::default().params();
        assert_eq!(bare, vec![kv("Limit", "20"), kv("Order", "Newest")]);
        let key_only = ListQuery {
            tag: "team".into(),
            ..Default::default()
        };
        assert!(key_only.params().contains(&kv("Tag.1.Key", "team")));
        assert!(!key_only.params().iter().any(|(k, _)| k == "Tag.1.Value"));
    }
}
