//! A bill (ADR 0010): metered periods clipped to `[since, until)`, their usage in exact units
//! (vCPU-seconds, GiB-seconds) priced with a region's prices, in lines by group, UTC day or
//! the value of one tag. Amounts are exact decimals; vCPU and memory are priced per second
//! and stay exact to the millisecond, storage and image caches are priced per hour and their
//! line amounts are rounded to [`SECOND_PRICE_DECIMALS`] places. Rounding to the currency's
//! smallest unit happens in [`Bill::invoice_total`] alone, shown beside the exact total.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

use super::catalog::RegionPrices;
use super::quote::{SECONDS_PER_HOUR, SECOND_PRICE_DECIMALS};
use crate::metering::BilledTerms;
use crate::Tag;

/// Longest tag key `tag:KEY` may name (ECI's own limit on tag keys).
pub const MAX_TAG_KEY: usize = 128;
/// Most lines one bill holds: a wider one must ask for a shorter range or coarser lines.
pub const MAX_BILL_LINES: usize = 10_000;
/// Decimal places of image-cache GiB-seconds (bytes / 2^30 ends only after 30).
const GIB_SECOND_DECIMALS: u32 = 12;

/// How a bill's lines are made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// One line per group (or image cache): its id, with its name.
    Group,
    /// One line per UTC day (`2026-12-03`).
    Day,
    /// One line per value of this tag ("" for what does not carry it).
    Tag(String),
    /// One line per account (key ""): an account's total.
    Account,
}

impl GroupBy {
    /// `group`, `day`, `account` or `tag:KEY` (KEY 1 to [`MAX_TAG_KEY`] bytes).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "group" => Some(Self::Group),
            "day" => Some(Self::Day),
            "account" => Some(Self::Account),
            _ => s
                .strip_prefix("tag:")
                .filter(|k| !k.is_empty() && k.len() <= MAX_TAG_KEY)
                .map(|k| Self::Tag(k.to_string())),
        }
    }

    pub fn label(&self) -> String {
        match self {
            Self::Group => "group".into(),
            Self::Day => "day".into(),
            Self::Account => "account".into(),
            Self::Tag(k) => format!("tag:{k}"),
        }
    }
}

/// What a metered period held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    /// A group's size; `spot_hour` is the hourly compute price in force of a preemptible
    /// group (then vCPU and memory are priced with it, not the catalog's).
    Group {
        terms: BilledTerms,
        spot_hour: Option<Decimal>,
    },
    /// Bytes of an image cache's storage.
    ImageCache { bytes: u64 },
}

/// One metered period of an account's group or image cache, ended (an open one is ended at
/// the time of the bill by its caller).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metered {
    pub account: String,
    /// The group's or image cache's id.
    pub id: String,
    pub name: String,
    pub tags: Vec<Tag>,
    pub held: Held,
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
}

/// Usage and its price; every field exact (see the module's note on rounding).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Amounts {
    /// Milliseconds groups were billed (summed over groups).
    pub billed_millis: i64,
    pub vcpu_seconds: Decimal,
    pub memory_gib_seconds: Decimal,
    /// Temporary storage above the free size.
    pub storage_gib_seconds: Decimal,
    pub image_cache_gib_seconds: Decimal,
    /// vCPU and memory.
    pub compute: Decimal,
    pub storage: Decimal,
    pub image_cache: Decimal,
    pub total: Decimal,
}

impl Amounts {
    fn add(&mut self, o: &Amounts) {
        self.billed_millis += o.billed_millis;
        self.vcpu_seconds += o.vcpu_seconds;
        self.memory_gib_seconds += o.memory_gib_seconds;
        self.storage_gib_seconds += o.storage_gib_seconds;
        self.image_cache_gib_seconds += o.image_cache_gib_seconds;
        self.compute += o.compute;
        self.storage += o.storage;
        self.image_cache += o.image_cache;
        self.total += o.total;
    }

    /// Prices the hourly-priced usage and the total, once the line's usage is summed.
    fn settle(&mut self, p: &RegionPrices) {
        let hourly = |gib_seconds: Decimal, per_hour: Decimal| {
            (gib_seconds * per_hour / Decimal::from(SECONDS_PER_HOUR)).round_dp_with_strategy(
                SECOND_PRICE_DECIMALS,
                RoundingStrategy::MidpointAwayFromZero,
            )
        };
        self.storage = hourly(self.storage_gib_seconds, p.storage_gib_hour);
        self.image_cache = hourly(self.image_cache_gib_seconds, p.image_cache_gib_hour);
        self.total = self.compute + self.storage + self.image_cache;
        self.normalize();
    }

    /// Every amount without trailing zeros.
    fn normalize(&mut self) {
        for d in [
            &mut self.vcpu_seconds,
            &mut self.memory_gib_seconds,
            &mut self.storage_gib_seconds,
            &mut self.image_cache_gib_seconds,
            &mut self.compute,
            &mut self.storage,
            &mut self.image_cache,
            &mut self.total,
        ] {
            *d = d.normalize();
        }
    }
}

/// One line of a bill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillLine {
    pub account: String,
    /// The group's id, the day, or the tag's value.
    pub key: String,
    /// The group's name (by group only).
    pub name: String,
    pub amounts: Amounts,
}

/// A bill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bill {
    pub currency: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub group_by: GroupBy,
    /// By account, then key.
    pub lines: Vec<BillLine>,
    /// The sum of the lines, exact.
    pub total: Amounts,
}

impl Bill {
    /// The total rounded to the currency's smallest unit, half away from zero.
    pub fn invoice_total(&self) -> Decimal {
        self.total
            .total
            .round_dp_with_strategy(
                minor_unit_digits(&self.currency),
                RoundingStrategy::MidpointAwayFromZero,
            )
            .normalize()
    }
}

/// Decimal places of a currency's smallest unit (ISO 4217): none for the yen, the won and a
/// few others, three for the Gulf dinars, else two.
pub fn minor_unit_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// A bill with more lines than [`MAX_BILL_LINES`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the bill would have more than {MAX_BILL_LINES} lines: ask for a shorter range or coarser lines")]
pub struct TooManyLines;

/// The usage and compute price of `held` for `millis`, before hourly prices are applied.
fn usage(p: &RegionPrices, held: &Held, millis: i64) -> Amounts {
    let secs = Decimal::new(millis.max(0), 3);
    match held {
        Held::Group { terms, spot_hour } => {
            let vcpu_seconds = Decimal::new(i64::from(terms.cpu_milli), 3) * secs;
            // MiB / 1024 ends (1024 is a power of two): exact.
            let memory_gib_seconds = Decimal::from(terms.memory_mib) / Decimal::from(1024) * secs;
            let compute = match spot_hour {
                None => vcpu_seconds * p.vcpu_second + memory_gib_seconds * p.memory_gib_second,
                Some(h) => (*h * secs / Decimal::from(SECONDS_PER_HOUR)).round_dp_with_strategy(
                    SECOND_PRICE_DECIMALS,
                    RoundingStrategy::MidpointAwayFromZero,
                ),
            };
            Amounts {
                billed_millis: millis.max(0),
                vcpu_seconds,
                memory_gib_seconds,
                storage_gib_seconds: Decimal::from(terms.storage_gib) * secs,
                compute,
                ..Default::default()
            }
        }
        Held::ImageCache { bytes } => Amounts {
            image_cache_gib_seconds: (Decimal::from(*bytes) * secs / Decimal::from(1u64 << 30))
                .round_dp_with_strategy(
                    GIB_SECOND_DECIMALS,
                    RoundingStrategy::MidpointAwayFromZero,
                ),
            ..Default::default()
        },
    }
}

/// The pieces of `[from, to)` by UTC day, each with its day.
fn days(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(String, DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut start = from;
    while start < to {
        let next = (start.date_naive() + Duration::days(1))
            .and_time(NaiveTime::MIN)
            .and_utc();
        let end = next.min(to);
        out.push((start.format("%Y-%m-%d").to_string(), start, end));
        start = end;
    }
    out
}

/// The bill of `metered` within `[since, until)` under `prices`.
pub fn bill(
    prices: &RegionPrices,
    metered: &[Metered],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    group_by: &GroupBy,
) -> Result<Bill, TooManyLines> {
    let mut lines: BTreeMap<(String, String), BillLine> = BTreeMap::new();
    for m in metered {
        let (from, to) = (m.started.max(since), m.ended.min(until));
        if to <= from {
            continue;
        }
        let pieces = match group_by {
            GroupBy::Day => days(from, to),
            GroupBy::Group => vec![(m.id.clone(), from, to)],
            GroupBy::Account => vec![(String::new(), from, to)],
            GroupBy::Tag(k) => {
                let v = m.tags.iter().find(|t| &t.key == k).map(|t| t.value.clone());
                vec![(v.unwrap_or_default(), from, to)]
            }
        };
        for (key, a, b) in pieces {
            let amounts = usage(prices, &m.held, (b - a).num_milliseconds());
            let id = (m.account.clone(), key);
            if !lines.contains_key(&id) && lines.len() >= MAX_BILL_LINES {
                return Err(TooManyLines);
            }
            let line = lines
                .entry(id)
                .or_insert_with_key(|(account, key)| BillLine {
                    account: account.clone(),
                    key: key.clone(),
                    name: match group_by {
                        GroupBy::Group => m.name.clone(),
                        _ => String::new(),
                    },
                    amounts: Amounts::default(),
                });
            line.amounts.add(&amounts);
        }
    }
    let mut total = Amounts::default();
    let lines: Vec<BillLine> = lines
        .into_values()
        .map(|mut l| {
            l.amounts.settle(prices);
            total.add(&l.amounts);
            l
        })
        .collect();
    total.normalize();
    Ok(Bill {
        currency: prices.currency.clone(),
        since,
        until,
        group_by: group_by.clone(),
        lines,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, h, m, s).unwrap()
    }

    fn group(
        id: &str,
        cpu_milli: u32,
        memory_mib: u32,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Metered {
        Metered {
            account: "a".into(),
            id: id.into(),
            name: format!("name-{id}"),
            tags: vec![],
            held: Held::Group {
                terms: BilledTerms {
                    cpu_milli,
                    memory_mib,
                    storage_gib: 0,
                },
                spot_hour: None,
            },
            started: from,
            ended: to,
        }
    }

    fn whole_day() -> (DateTime<Utc>, DateTime<Utc>) {
        (t(0, 0, 0), t(23, 59, 59))
    }

    #[test]
    fn twelve_seconds_of_one_vcpu_is_0_000588() {
        let p = RegionPrices::builtin();
        let (s, u) = whole_day();
        let b = bill(
            &p,
            &[group("g", 1000, 0, t(1, 0, 0), t(1, 0, 12))],
            s,
            u,
            &GroupBy::Group,
        )
        .unwrap();
        assert_eq!(b.total.total.to_string(), "0.000588");
        assert_eq!(b.lines[0].amounts.vcpu_seconds.to_string(), "12");
        assert_eq!(b.lines[0].amounts.billed_millis, 12_000);
        assert_eq!(b.invoice_total().to_string(), "0");
        assert_eq!(b.currency, "CNY");
    }

    #[test]
    fn price_times_usage_is_the_bill_exactly() {
        let p = RegionPrices::builtin();
        let (s, u) = whole_day();
        let from = t(2, 0, 0);
        let to = from + Duration::milliseconds(7_654_321);
        let b = bill(
            &p,
            &[
                group("g", 250, 512, from, to),
                group("h", 2000, 4096, t(3, 0, 0), t(3, 0, 1)),
            ],
            s,
            u,
            &GroupBy::Group,
        )
        .unwrap();
        for l in &b.lines {
            let a = &l.amounts;
            assert_eq!(
                a.compute,
                a.vcpu_seconds * p.vcpu_second + a.memory_gib_seconds * p.memory_gib_second
            );
            assert_eq!(a.total, a.compute);
        }
        let g = &b.lines[0].amounts;
        assert_eq!(g.vcpu_seconds, d("1913.58025"));
        assert_eq!(g.memory_gib_seconds, d("3827.1605"));
        // ECI's example size for one second.
        assert_eq!(b.lines[1].amounts.total.to_string(), "0.00012252");
        assert_eq!(b.total.total, g.total + d("0.00012252"));
        assert_eq!(b.total.billed_millis, 7_654_321 + 1000);
    }

    #[test]
    fn periods_are_clipped_to_the_range() {
        let p = RegionPrices::builtin();
        let g = group("g", 1000, 0, t(1, 0, 0), t(2, 0, 0));
        let b = bill(
            &p,
            std::slice::from_ref(&g),
            t(1, 30, 0),
            t(3, 0, 0),
            &GroupBy::Group,
        )
        .unwrap();
        assert_eq!(b.total.billed_millis, 1_800_000);
        let b = bill(
            &p,
            std::slice::from_ref(&g),
            t(0, 0, 0),
            t(1, 0, 10),
            &GroupBy::Group,
        )
        .unwrap();
        assert_eq!(b.total.vcpu_seconds, d("10"));
        let b = bill(&p, &[g], t(2, 0, 0), t(3, 0, 0), &GroupBy::Group).unwrap();
        assert!(b.lines.is_empty());
        assert_eq!(b.total.total, Decimal::ZERO);
    }

    #[test]
    fn lines_by_day_split_at_utc_midnight() {
        let p = RegionPrices::builtin();
        let from = t(23, 0, 0);
        let g = group("g", 1000, 0, from, from + Duration::hours(2));
        let b = bill(
            &p,
            &[g],
            t(0, 0, 0),
            from + Duration::days(2),
            &GroupBy::Day,
        )
        .unwrap();
        let keys: Vec<_> = b
            .lines
            .iter()
            .map(|l| (l.key.as_str(), l.amounts.billed_millis))
            .collect();
        assert_eq!(keys, [("2026-12-03", 3_600_000), ("2026-12-04", 3_600_000)]);
        assert_eq!(b.total.total, d("0.000049") * d("7200"));
    }

    #[test]
    fn lines_by_tag_and_by_account() {
        let p = RegionPrices::builtin();
        let tag = |k: &str, v: &str| Tag {
            key: k.into(),
            value: v.into(),
        };
        let mut a = group("a1", 1000, 0, t(1, 0, 0), t(1, 0, 10));
        a.tags = vec![tag("team", "red"), tag("env", "x")];
        let mut b2 = group("a2", 1000, 0, t(1, 0, 0), t(1, 0, 20));
        b2.tags = vec![tag("team", "red")];
        let c = group("a3", 1000, 0, t(1, 0, 0), t(1, 0, 5));
        let mut other = group("b1", 1000, 0, t(1, 0, 0), t(1, 0, 1));
        other.account = "b".into();
        other.tags = vec![tag("team", "red")];
        let (s, u) = whole_day();
        let b = bill(
            &p,
            &[a.clone(), b2.clone(), c.clone(), other.clone()],
            s,
            u,
            &GroupBy::Tag("team".into()),
        )
        .unwrap();
        let keys: Vec<_> = b
            .lines
            .iter()
            .map(|l| {
                (
                    l.account.as_str(),
                    l.key.as_str(),
                    l.amounts.vcpu_seconds.to_string(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("a", "", "5".into()),
                ("a", "red", "30".into()),
                ("b", "red", "1".into())
            ]
        );
        assert!(b.lines.iter().all(|l| l.name.is_empty()));
        let b = bill(&p, &[a, b2, c, other], s, u, &GroupBy::Account).unwrap();
        let keys: Vec<_> = b
            .lines
            .iter()
            .map(|l| (l.account.as_str(), l.key.as_str(), l.amounts.billed_millis))
            .collect();
        assert_eq!(keys, [("a", "", 35_000), ("b", "", 1000)]);
    }

    #[test]
    fn hourly_prices_and_rounding_only_in_the_invoice() {
        let p = RegionPrices::builtin();
        let (s, u) = whole_day();
        let mut g = group("g", 0, 0, t(1, 0, 0), t(2, 0, 0));
        g.held = Held::Group {
            terms: BilledTerms {
                cpu_milli: 0,
                memory_mib: 0,
                storage_gib: 10,
            },
            spot_hour: None,
        };
        let cache = Metered {
            id: "imc-1".into(),
            held: Held::ImageCache { bytes: 3 << 30 },
            ..group("imc-1", 0, 0, t(1, 0, 0), t(3, 0, 0))
        };
        let b = bill(&p, &[g, cache], s, u, &GroupBy::Group).unwrap();
        assert_eq!(b.lines[0].amounts.storage.to_string(), "0.0203");
        assert_eq!(b.lines[0].amounts.billed_millis, 3_600_000);
        assert_eq!(b.lines[1].key, "imc-1");
        assert_eq!(b.lines[1].amounts.image_cache_gib_seconds, d("21600"));
        assert_eq!(b.lines[1].amounts.image_cache, d("0.001002"));
        assert_eq!(b.lines[1].amounts.billed_millis, 0);
        assert_eq!(b.total.total.to_string(), "0.021302");
        assert_eq!(b.invoice_total().to_string(), "0.02");
        let mut big = b.clone();
        big.total.total = d("1.005");
        assert_eq!(big.invoice_total().to_string(), "1.01");
        big.currency = "JPY".into();
        assert_eq!(big.invoice_total().to_string(), "1");
    }

    #[test]
    fn a_spot_group_pays_its_price_in_force() {
        let p = RegionPrices::builtin();
        let (s, u) = whole_day();
        let mut g = group("g", 2000, 4096, t(1, 0, 0), t(1, 30, 0));
        g.held = Held::Group {
            terms: BilledTerms {
                cpu_milli: 2000,
                memory_mib: 4096,
                storage_gib: 0,
            },
            spot_hour: Some(d("0.1323216")),
        };
        let b = bill(&p, &[g], s, u, &GroupBy::Group).unwrap();
        assert_eq!(b.total.compute.to_string(), "0.0661608");
        assert_eq!(b.total.vcpu_seconds, d("3600"));
    }

    #[test]
    fn group_by_parses_and_lines_are_bounded() {
        assert_eq!(GroupBy::parse("group"), Some(GroupBy::Group));
        assert_eq!(GroupBy::parse("day"), Some(GroupBy::Day));
        assert_eq!(GroupBy::parse("account"), Some(GroupBy::Account));
        assert_eq!(
            GroupBy::parse("tag:team"),
            Some(GroupBy::Tag("team".into()))
        );
        for bad in [
            "",
            "tag:",
            "Group",
            "month",
            &format!("tag:{}", "k".repeat(129)),
        ] {
            assert_eq!(GroupBy::parse(bad), None, "{bad}");
        }
        assert_eq!(GroupBy::Tag("x".into()).label(), "tag:x");
        let p = RegionPrices::builtin();
        let many: Vec<_> = (0..=MAX_BILL_LINES)
            .map(|i| group(&format!("g{i}"), 1000, 0, t(1, 0, 0), t(1, 0, 1)))
            .collect();
        let (s, u) = whole_day();
        assert_eq!(bill(&p, &many, s, u, &GroupBy::Group), Err(TooManyLines));
        assert_eq!(bill(&p, &many, s, u, &GroupBy::Day).unwrap().lines.len(), 1);
    }
}
