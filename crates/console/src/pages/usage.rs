//! Usage and bill: DescribeUsage of the account for a range (this month by default), by day
//! (with a chart) and by group, and each as a CSV download.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_eci::response::{DescribeUsageResponse, UsageLine};
use berth_eci::{Action, ApiError};
use maud::{html, Markup};
use serde::Deserialize;

use crate::api::{call_as, kv};
use crate::auth::{signed, Signed};
use crate::page::{error_box, html_response, layout_with};
use crate::Console;

#[derive(Clone, Debug, Default, Deserialize)]
pub struct UsageQuery {
    /// RFC 3339; empty: the start of this month.
    #[serde(default)]
    pub since: String,
    /// RFC 3339; empty: now.
    #[serde(default)]
    pub until: String,
    /// `day` or `group` (the CSV's lines).
    #[serde(default)]
    pub by: String,
}

impl UsageQuery {
    fn params(&self, by: &str) -> Vec<(String, String)> {
        let mut p = vec![kv("GroupBy", by)];
        if !self.since.trim().is_empty() {
            p.push(kv("Since", self.since.trim()));
        }
        if !self.until.trim().is_empty() {
            p.push(kv("Until", self.until.trim()));
        }
        p
    }
}

async fn bill(
    c: &Console,
    who: &Signed,
    q: &UsageQuery,
    by: &str,
) -> Result<DescribeUsageResponse, ApiError> {
    call_as(c, who, Action::DescribeUsage, q.params(by)).await
}

fn table(caption: &str, key: &str, b: &DescribeUsageResponse, name: bool) -> Markup {
    html! {
        div.scroll { table {
            caption { (caption) }
            thead { tr {
                th scope="col" { (key) }
                @if name { th scope="col" { "Name" } }
                th scope="col" { "Billed seconds" } th scope="col" { "vCPU·s" } th scope="col" { "GiB·s" }
                th scope="col" { "Amount (" (b.currency) ")" }
            } }
            tbody {
                @for l in &b.lines {
                    tr {
                        td { code { (l.key) } }
                        @if name { td { (l.name) } }
                        td { (l.amounts.billed_seconds) } td { (l.amounts.vcpu_seconds) }
                        td { (l.amounts.memory_gib_seconds) } td { (l.amounts.amount) }
                    }
                }
                tr.total {
                    th scope="row" { "Total" }
                    @if name { td {} }
                    td { (b.total.billed_seconds) } td { (b.total.vcpu_seconds) }
                    td { (b.total.memory_gib_seconds) } td { (b.total.amount) }
                }
            }
        } }
    }
}

/// `GET /console/usage`.
pub async fn show(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<UsageQuery>,
) -> Response {
    let who = match signed(&c, &headers).await {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let by_day = bill(&c, &who, &q, "day").await;
    let by_group = bill(&c, &who, &q, "group").await;
    let qs = format!(
        "since={}&until={}",
        super::enc(&q.since),
        super::enc(&q.until)
    );
    let body = html! {
        form.filters method="get" action="/console/usage" {
            div { label for="since" { "Since (RFC 3339)" } input id="since" name="since" value=(q.since) placeholder="2026-12-01T00:00:00Z"; }
            div { label for="until" { "Until (RFC 3339)" } input id="until" name="until" value=(q.until) placeholder="now"; }
            button type="submit" { "Show" }
        }
        @match (&by_day, &by_group) {
            (Err(e), _) | (_, Err(e)) => (error_box(e)),
            (Ok(d), Ok(g)) => {
                p { "From " (d.since) " to " (d.until) ": " strong { (d.invoice_total) " " (d.currency) } " to invoice." }
                figure {
                    figcaption { "Amount per day (" (d.currency) ")" }
                    div.chart id="chart-usage" data-days=(days_json(&d.lines)) {}
                }
                p {
                    a href={ "/console/usage.csv?by=day&" (qs) } download { "Download by day (CSV)" }
                    " · "
                    a href={ "/console/usage.csv?by=group&" (qs) } download { "Download by group (CSV)" }
                }
                (table("By day", "Day", d, false))
                (table("By group", "Group", g, true))
            }
        }
    };
    html_response(
        StatusCode::OK,
        layout_with(
            "Usage and bill",
            Some(&who),
            &["uPlot.min.css", "uPlot.iife.min.js"],
            body,
        ),
    )
}

/// `[[seconds since the epoch of the day's start, amount], ...]` for the chart.
fn days_json(lines: &[UsageLine]) -> String {
    let points: Vec<(i64, f64)> = lines
        .iter()
        .filter_map(|l| {
            let day = chrono::NaiveDate::parse_from_str(&l.key, "%Y-%m-%d").ok()?;
            let t = day.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
            Some((t, l.amounts.amount.parse().ok()?))
        })
        .collect();
    serde_json::to_string(&points).unwrap_or_else(|_| "[]".into())
}

/// One CSV field, quoted when it must be, and never read as a formula by a spreadsheet.
fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The bill as CSV.
pub fn to_csv(b: &DescribeUsageResponse) -> String {
    let mut out = String::from(
        "key,name,billed_seconds,vcpu_seconds,memory_gib_seconds,storage_gib_seconds,image_cache_gib_seconds,amount,currency\n",
    );
    for l in &b.lines {
        let a = &l.amounts;
        let row = [
            l.key.as_str(),
            l.name.as_str(),
            &a.billed_seconds,
            &a.vcpu_seconds,
            &a.memory_gib_seconds,
            &a.storage_gib_seconds,
            &a.image_cache_gib_seconds,
            &a.amount,
            &b.currency,
        ];
        out.push_str(&row.iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// `GET /console/usage.csv?by=day|group`.
pub async fn csv(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<UsageQuery>,
) -> Response {
    let who = match signed(&c, &headers).await {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let by = if q.by == "group" { "group" } else { "day" };
    match bill(&c, &who, &q, by).await {
        Ok(b) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"berth-usage-by-{by}.csv\""),
                ),
            ],
            to_csv(&b),
        )
            .into_response(),
        Err(e) => crate::page::error_page(Some(&who), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=cmd()"), "'=cmd()");
        assert_eq!(field("-1.5"), "-1.5");
        let b: DescribeUsageResponse = serde_json::from_value(serde_json::json!({
            "Currency": "CNY",
            "Lines": [{"Key": "eci-1", "Name": "web,1", "Amount": "0.5", "BilledSeconds": "60"}]
        }))
        .unwrap();
        let text = to_csv(&b);
        assert_eq!(text.lines().nth(1), Some("eci-1,\"web,1\",60,,,,,0.5,CNY"));
    }
}
