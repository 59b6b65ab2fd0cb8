//! DescribeUsage's answer (docs/API-EXTENSIONS.md): a bill's lines and totals, every amount
//! and quantity a decimal string with exactly its digits (never through a float), the unit
//! prices it was priced with, and the invoice total rounded to the currency's smallest unit
//! beside the exact one. Read back by `berth usage`.

use berth_core::price::{Amounts, Bill, Decimal, RegionPrices};
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeUsageResponse {
    pub request_id: String,
    pub currency: String,
    /// RFC 3339, milliseconds, UTC.
    pub since: String,
    pub until: String,
    /// `group`, `day`, `account` or `tag:KEY`.
    pub group_by: String,
    /// The account billed, or `*` for every account.
    pub account_id: String,
    pub unit_prices: UnitPrices,
    pub lines: Vec<UsageLine>,
    /// The sum of the lines, exact.
    pub total: UsageAmounts,
    /// `Total.Amount` rounded to the currency's smallest unit (half away from zero).
    pub invoice_total: String,
}

/// The catalog's prices the bill used.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UnitPrices {
    pub vcpu_second: String,
    pub memory_gib_second: String,
    pub storage_gib_hour: String,
    pub image_cache_gib_hour: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UsageLine {
    pub account_id: String,
    /// The group's (or image cache's) id, the UTC day, or the tag's value.
    pub key: String,
    /// The group's name (by group only).
    pub name: String,
    #[serde(flatten)]
    pub amounts: UsageAmounts,
}

/// Usage in its units and what it cost.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UsageAmounts {
    /// Seconds groups were billed (to the millisecond, summed over groups).
    pub billed_seconds: String,
    pub vcpu_seconds: String,
    pub memory_gib_seconds: String,
    /// Temporary storage above the free size.
    pub storage_gib_seconds: String,
    pub image_cache_gib_seconds: String,
    /// vCPU and memory.
    pub compute_amount: String,
    pub storage_amount: String,
    pub image_cache_amount: String,
    pub amount: String,
}

fn text(d: Decimal) -> String {
    d.normalize().to_string()
}

impl UsageAmounts {
    pub fn from_amounts(a: &Amounts) -> Self {
        Self {
            billed_seconds: text(Decimal::new(a.billed_millis, 3)),
            vcpu_seconds: text(a.vcpu_seconds),
            memory_gib_seconds: text(a.memory_gib_seconds),
            storage_gib_seconds: text(a.storage_gib_seconds),
            image_cache_gib_seconds: text(a.image_cache_gib_seconds),
            compute_amount: text(a.compute),
            storage_amount: text(a.storage),
            image_cache_amount: text(a.image_cache),
            amount: text(a.total),
        }
    }
}

impl DescribeUsageResponse {
    /// The answer for `bill`, priced with `prices`, of `account_id` (`*`: every account).
    pub fn from_bill(bill: &Bill, prices: &RegionPrices, account_id: &str) -> Self {
        let time =
            |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        Self {
            request_id: String::new(),
            currency: bill.currency.clone(),
            since: time(bill.since),
            until: time(bill.until),
            group_by: bill.group_by.label(),
            account_id: account_id.to_string(),
            unit_prices: UnitPrices {
                vcpu_second: text(prices.vcpu_second),
                memory_gib_second: text(prices.memory_gib_second),
                storage_gib_hour: text(prices.storage_gib_hour),
                image_cache_gib_hour: text(prices.image_cache_gib_hour),
            },
            lines: bill
                .lines
                .iter()
                .map(|l| UsageLine {
                    account_id: l.account.clone(),
                    key: l.key.clone(),
                    name: l.name.clone(),
                    amounts: UsageAmounts::from_amounts(&l.amounts),
                })
                .collect(),
            total: UsageAmounts::from_amounts(&bill.total),
            invoice_total: text(bill.invoice_total()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::metering::BilledTerms;
    use berth_core::price::{bill, GroupBy, Held, Metered};
    use chrono::{TimeZone, Utc};

    #[test]
    fn amounts_are_exact_strings() {
        let p = RegionPrices::builtin();
        let at = |s| Utc.with_ymd_and_hms(2026, 12, 3, 1, 0, s).unwrap();
        let m = Metered {
            account: "a".into(),
            id: "eci-1".into(),
            name: "web".into(),
            tags: vec![],
            held: Held::Group {
                terms: BilledTerms {
                    cpu_milli: 1000,
                    memory_mib: 0,
                    storage_gib: 0,
                },
                spot_hour: None,
            },
            started: at(0),
            ended: at(12),
        };
        let b = bill(&p, &[m], at(0), at(59), &GroupBy::Group).unwrap();
        let r = DescribeUsageResponse::from_bill(&b, &p, "a");
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["Currency"], "CNY");
        assert_eq!(v["GroupBy"], "group");
        assert_eq!(v["Since"], "2026-12-03T01:00:00.000Z");
        assert_eq!(v["UnitPrices"]["VcpuSecond"], "0.000049");
        let line = &v["Lines"][0];
        assert_eq!(line["Key"], "eci-1");
        assert_eq!(line["Name"], "web");
        assert_eq!(line["BilledSeconds"], "12");
        assert_eq!(line["VcpuSeconds"], "12");
        assert_eq!(line["Amount"], "0.000588");
        assert_eq!(v["Total"]["Amount"], "0.000588");
        assert_eq!(v["InvoiceTotal"], "0");
        let back: DescribeUsageResponse = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}
