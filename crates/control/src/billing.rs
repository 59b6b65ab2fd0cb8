//! Charges and bills from the metering ledger (ADR 0010) and the image caches' storage
//! intervals: billed milliseconds within a time range priced with the catalog of the region
//! berth serves, as exact decimals (`berth_core::price`). The usage API and `/metrics` show
//! these.

use std::collections::{BTreeSet, HashMap};

use berth_core::price::{bill, charge, Bill, Decimal, GroupBy, Held, Metered, RegionPrices};
use chrono::{DateTime, Utc};

use crate::{Control, ControlError, CACHE_STORAGE};

/// A billed period of a group as a bill takes it (an open one ends `now`).
fn group_metered(p: berth_store::LedgerPeriod, now: DateTime<Utc>) -> Metered {
    let spot_hour = p
        .spot_price
        .as_deref()
        .and_then(|s| Decimal::from_str_exact(s).ok());
    Metered {
        account: p.account,
        id: p.group_id,
        name: p.group_name,
        tags: p.tags,
        held: Held::Group {
            terms: p.terms,
            spot_hour,
        },
        started: p.started,
        ended: p.ended.unwrap_or(now),
    }
}

/// What one group cost within a range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCharge {
    pub group_id: String,
    pub account: String,
    /// Billed milliseconds within the range.
    pub millis: i64,
    pub amount: Decimal,
    pub currency: String,
}

impl Control {
    /// The prices bills are made with: those of the region berth serves.
    pub fn billing_prices(&self) -> RegionPrices {
        let catalog = self.prices();
        catalog
            .for_region(self.region(), self.region())
            .unwrap_or_else(|| catalog.default_prices())
            .clone()
    }

    /// The bill of `account` (every account's with `None`) for `[since, until)`: its groups'
    /// billed periods, with the names and tags they had, and its image caches' storage; the
    /// periods still open end now.
    pub async fn bill(
        &self,
        account: Option<&str>,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        group_by: &GroupBy,
    ) -> Result<Bill, ControlError> {
        let now = Utc::now();
        let mut metered: Vec<Metered> = Vec::new();
        for p in self.store.ledger(account, since, until).await? {
            metered.push(group_metered(p, now));
        }
        let accounts: BTreeSet<String> = match account {
            Some(a) => BTreeSet::from([a.to_string()]),
            None => self
                .store
                .list_accounts()
                .await?
                .into_iter()
                .map(|a| a.name)
                .collect(),
        };
        for a in &accounts {
            for u in self.store.usage(a, CACHE_STORAGE, since, until).await? {
                metered.push(Metered {
                    account: a.clone(),
                    id: u.resource,
                    name: String::new(),
                    tags: Vec::new(),
                    held: Held::ImageCache { bytes: u.quantity },
                    started: u.started,
                    ended: u.ended.unwrap_or(now),
                });
            }
        }
        Ok(bill(
            &self.billing_prices(),
            &metered,
            since,
            until,
            group_by,
        )?)
    }

    /// The bill of the groups `ids` of `account` (of any account with `None`) for
    /// `[since, until)`: their billed periods alone, read group by group (no image cache).
    pub async fn bill_of_groups(
        &self,
        account: Option<&str>,
        ids: &[berth_core::GroupId],
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        group_by: &GroupBy,
    ) -> Result<Bill, ControlError> {
        let now = Utc::now();
        let mut metered: Vec<Metered> = Vec::new();
        for id in ids {
            for p in self.store.group_ledger(id).await? {
                let mine = account.is_none_or(|a| p.account == a);
                let overlaps = p.started < until && p.ended.is_none_or(|e| e > since);
                if mine && overlaps {
                    metered.push(group_metered(p, now));
                }
            }
        }
        Ok(bill(
            &self.billing_prices(),
            &metered,
            since,
            until,
            group_by,
        )?)
    }

    /// The charges of `account`'s groups (every account's with `None`) for `[from, to)`, by
    /// group in the order they were first billed.
    pub async fn charges(
        &self,
        account: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<GroupCharge>, ControlError> {
        let prices = &self.billing_prices();
        let mut out: Vec<GroupCharge> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for p in self.store.ledger(account, from, to).await? {
            let millis = p.millis_within(from, to);
            let amount = charge(prices, &p.terms, millis);
            match index.get(&p.group_id) {
                Some(&i) => {
                    let c = &mut out[i];
                    c.millis += millis;
                    c.amount = (c.amount + amount).normalize();
                }
                None => {
                    index.insert(p.group_id.clone(), out.len());
                    out.push(GroupCharge {
                        group_id: p.group_id,
                        account: p.account,
                        millis,
                        amount,
                        currency: prices.currency.clone(),
                    });
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use berth_core::metering::BilledTerms;
    use berth_core::price::RegionPrices;
    use berth_core::{GroupId, GroupRecord, GroupSpec, GroupStatus};
    use berth_store::{SqliteStore, Store};
    use chrono::Duration;

    use super::*;

    fn record(n: u8, account: &str) -> GroupRecord {
        GroupRecord {
            ..GroupRecord::new(
                GroupId::from_random([n; 20]),
                account,
                GroupSpec {
                    name: format!("g{n}"),
                    cpu: 2.0,
                    memory: 4.0,
                    ..Default::default()
                },
                Utc::now(),
            )
        }
    }

    #[tokio::test]
    async fn a_charge_is_price_times_usage_exactly() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let control = Control::new(store.clone(), "local");
        for (n, acct) in [(1, "a"), (2, "b")] {
            let rec = record(n, acct);
            store.insert_group(&rec).await.unwrap();
            store
                .modify_group(&rec.id, &mut |r| r.status = GroupStatus::Running)
                .await
                .unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(30));
        let rec = record(1, "a");
        store
            .modify_group(&rec.id, &mut |r| r.status = GroupStatus::Succeeded)
            .await
            .unwrap();
        let now = Utc::now();
        let from = now - Duration::hours(1);
        let mine = control.charges(Some("a"), from, now).await.unwrap();
        assert_eq!(mine.len(), 1);
        let c = &mine[0];
        assert_eq!(
            (c.group_id.as_str(), c.currency.as_str()),
            (rec.id.as_str(), "CNY")
        );
        let period = &store.group_ledger(&rec.id).await.unwrap()[0];
        let millis = (period.ended.unwrap() - period.started).num_milliseconds();
        assert!(millis >= 30, "{millis}");
        assert_eq!(c.millis, millis);
        let terms = BilledTerms {
            cpu_milli: 2000,
            memory_mib: 4096,
            storage_gib: 0,
        };
        assert_eq!(c.amount, charge(&RegionPrices::builtin(), &terms, millis));
        // 0.00012252 a second, to the millisecond.
        assert_eq!(
            c.amount,
            (Decimal::new(12252, 8) * Decimal::new(millis, 3)).normalize()
        );
        assert_eq!(control.charges(None, from, now).await.unwrap().len(), 2);
        assert!(control
            .charges(
                Some("a"),
                now + Duration::hours(1),
                now + Duration::hours(2)
            )
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn a_bill_names_deleted_groups_and_keeps_to_its_account() {
        use berth_core::price::GroupBy;
        use berth_core::Tag;

        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let control = Control::new(store.clone(), "local");
        for (n, acct) in [(1, "a"), (2, "a"), (3, "b")] {
            let mut rec = record(n, acct);
            if n == 1 {
                rec.spec.tags = vec![Tag {
                    key: "team".into(),
                    value: "red".into(),
                }];
            }
            store.insert_group(&rec).await.unwrap();
            store
                .modify_group(&rec.id, &mut |r| r.status = GroupStatus::Running)
                .await
                .unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        let first = record(1, "a");
        store.delete_group(&first.id).await.unwrap();
        let now = Utc::now();
        let (from, to) = (now - Duration::hours(1), now + Duration::hours(1));
        let bill = control
            .bill(Some("a"), from, to, &GroupBy::Group)
            .await
            .unwrap();
        assert_eq!(bill.lines.len(), 2, "{bill:?}");
        assert!(bill.lines.iter().all(|l| l.account == "a"));
        let gone = bill
            .lines
            .iter()
            .find(|l| l.key == first.id.as_str())
            .unwrap();
        assert_eq!(gone.name, "g1");
        let period = &store.group_ledger(&first.id).await.unwrap()[0];
        let millis = (period.ended.unwrap() - period.started).num_milliseconds();
        assert_eq!(gone.amounts.billed_millis, millis);
        // The open one counts until now, not until the end of the range.
        assert!(bill.total.billed_millis < 60_000, "{bill:?}");
        let by_tag = control
            .bill(Some("a"), from, to, &GroupBy::Tag("team".into()))
            .await
            .unwrap();
        let keys: Vec<&str> = by_tag.lines.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys, ["", "red"]);
        assert_eq!(by_tag.lines[1].amounts.total, gone.amounts.total);
        let two = record(2, "a");
        let three = record(3, "b");
        let of_two = control
            .bill_of_groups(
                Some("a"),
                &[two.id.clone(), three.id.clone()],
                from,
                to,
                &GroupBy::Group,
            )
            .await
            .unwrap();
        let keys: Vec<&str> = of_two.lines.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(
            keys,
            [two.id.as_str()],
            "another account's group is left out"
        );
        let line = bill
            .lines
            .iter()
            .find(|l| l.key == two.id.as_str())
            .unwrap();
        assert!(of_two.lines[0].amounts.billed_millis >= line.amounts.billed_millis);
        assert!(control
            .bill_of_groups(
                Some("a"),
                std::slice::from_ref(&two.id),
                now + Duration::hours(2),
                now + Duration::hours(3),
                &GroupBy::Group
            )
            .await
            .unwrap()
            .lines
            .is_empty());
        let all = control
            .bill(None, from, to, &GroupBy::Account)
            .await
            .unwrap();
        let accounts: Vec<&str> = all.lines.iter().map(|l| l.account.as_str()).collect();
        assert_eq!(accounts, ["a", "b"]);
        // Made later, so its open periods ran longer.
        assert!(all.lines[0].amounts.total >= bill.total.total, "{all:?}");
        assert_eq!(
            all.total.total,
            all.lines[0].amounts.total + all.lines[1].amounts.total
        );
    }
}
