//! `berth usage`: the bill of an account through the API (DescribeUsage), as a table, JSON
//! or CSV. Amounts are printed as the server wrote them: exact decimals, with the invoice
//! total rounded to the currency's smallest unit beside the exact total.

use berth_client::response::{DescribeUsageResponse, UsageAmounts};
use berth_client::UsageParams;

use crate::cli::{client, ClientArgs};

#[derive(clap::Args)]
pub struct UsageArgs {
    /// Another account's bill (an operator's key only); `*` for every account.
    #[arg(long)]
    account: Option<String>,
    /// Start of the range (RFC 3339); default: the start of the current UTC month.
    #[arg(long)]
    since: Option<String>,
    /// End of the range, excluded (RFC 3339); default: now.
    #[arg(long)]
    until: Option<String>,
    /// Lines by group, day (UTC), account or tag:KEY (the value of that tag).
    #[arg(long, default_value = "group")]
    group_by: String,
    /// Output format.
    #[arg(short = 'o', long = "output", default_value = "table", value_parser = ["table", "json", "yaml", "csv"])]
    output: String,
}

pub async fn usage(a: &ClientArgs, u: UsageArgs) -> anyhow::Result<()> {
    let c = client(a)?;
    let bill = c
        .describe_usage(&UsageParams {
            account_id: u.account,
            since: u.since,
            until: u.until,
            group_by: Some(u.group_by),
        })
        .await?;
    let text = match u.output.as_str() {
        "json" => serde_json::to_string_pretty(&bill)? + "\n",
        "yaml" => crate::ui::yaml::to_string(&serde_json::to_value(&bill)?),
        "csv" => csv(&bill),
        _ => table(&bill),
    };
    print!("{text}");
    Ok(())
}

const HEADER: [&str; 12] = [
    "ACCOUNT",
    "KEY",
    "NAME",
    "BILLED_S",
    "VCPU_S",
    "MEMORY_GIB_S",
    "STORAGE_GIB_S",
    "IMAGE_CACHE_GIB_S",
    "COMPUTE",
    "STORAGE",
    "IMAGE_CACHE",
    "AMOUNT",
];

fn row(account: &str, key: &str, name: &str, a: &UsageAmounts) -> Vec<String> {
    [
        account,
        key,
        name,
        &a.billed_seconds,
        &a.vcpu_seconds,
        &a.memory_gib_seconds,
        &a.storage_gib_seconds,
        &a.image_cache_gib_seconds,
        &a.compute_amount,
        &a.storage_amount,
        &a.image_cache_amount,
        &a.amount,
    ]
    .map(str::to_string)
    .to_vec()
}

fn rows(b: &DescribeUsageResponse) -> Vec<Vec<String>> {
    let mut out = vec![HEADER.map(str::to_string).to_vec()];
    for l in &b.lines {
        out.push(row(&l.account_id, &l.key, &l.name, &l.amounts));
    }
    out.push(row(&b.account_id, "TOTAL", "", &b.total));
    out
}

/// Aligned columns, then the range and the invoice total.
fn table(b: &DescribeUsageResponse) -> String {
    let rows = rows(b);
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "{} to {} by {}; invoice total {} {cur} (exact {} {cur})\n",
        b.since,
        b.until,
        b.group_by,
        b.invoice_total,
        b.total.amount,
        cur = b.currency
    ));
    out
}

/// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

fn csv(b: &DescribeUsageResponse) -> String {
    let mut out = String::new();
    for r in rows(b) {
        let fields: Vec<String> = r.iter().map(|f| csv_field(f)).collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_client::response::UsageLine;

    fn bill() -> DescribeUsageResponse {
        DescribeUsageResponse {
            currency: "CNY".into(),
            since: "2026-12-01T00:00:00.000Z".into(),
            until: "2026-12-03T00:00:00.000Z".into(),
            group_by: "tag:team".into(),
            account_id: "a".into(),
            lines: vec![UsageLine {
                account_id: "a".into(),
                key: "red, \"blue\"".into(),
                name: String::new(),
                amounts: UsageAmounts {
                    billed_seconds: "12".into(),
                    amount: "0.000588".into(),
                    ..Default::default()
                },
            }],
            total: UsageAmounts {
                amount: "0.000588".into(),
                ..Default::default()
            },
            invoice_total: "0".into(),
            ..Default::default()
        }
    }

    #[test]
    fn json_shape() {
        let doc = crate::ui::format::document(crate::ui::Format::Json, &bill()).unwrap();
        insta::assert_snapshot!(doc.unwrap());
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let text = csv(&bill());
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert!(lines[0].starts_with("ACCOUNT,KEY,NAME,BILLED_S"), "{text}");
        assert!(
            lines[1].starts_with("a,\"red, \"\"blue\"\"\",,12,"),
            "{text}"
        );
        assert!(lines[1].ends_with(",0.000588"), "{text}");
        assert!(lines[2].starts_with("a,TOTAL,"), "{text}");
    }

    #[test]
    fn table_shows_the_invoice_total_beside_the_exact_one() {
        let text = table(&bill());
        assert!(
            text.contains("invoice total 0 CNY (exact 0.000588 CNY)"),
            "{text}"
        );
        assert!(text.lines().nth(1).unwrap().contains("0.000588"), "{text}");
    }
}
