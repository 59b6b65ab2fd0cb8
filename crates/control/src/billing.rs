//! Charges from the metering ledger (ADR 0010): each group's billed milliseconds within a time
//! range priced with the catalog of the region berth serves, as exact decimals. The bill
//! commands and API will group and show these.

use std::collections::HashMap;

use berth_core::price::{charge, Decimal};
use chrono::{DateTime, Utc};

use crate::{Control, ControlError};

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
    /// The charges of `account`'s groups (every account's with `None`) for `[from, to)`, by
    /// group in the order they were first billed.
    pub fn charges(
        &self,
        account: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<GroupCharge>, ControlError> {
        let catalog = self.prices();
        let prices = catalog
            .for_region(self.region(), self.region())
            .unwrap_or_else(|| catalog.default_prices());
        let mut out: Vec<GroupCharge> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for p in self.store.ledger(account, from, to)? {
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
            id: GroupId::from_random([n; 20]),
            account: account.into(),
            spec: GroupSpec {
                name: format!("g{n}"),
                cpu: 2.0,
                memory: 4.0,
                ..Default::default()
            },
            status: GroupStatus::Scheduling,
            intranet_ip: None,
            creation_time: Utc::now(),
            succeeded_time: None,
            failed_time: None,
            init_containers: vec![],
            containers: vec![],
            events: vec![],
            client_token: None,
            restart_generation: 0,
            change_tokens: vec![],
        }
    }

    #[test]
    fn a_charge_is_price_times_usage_exactly() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let control = Control::new(store.clone(), "local");
        for (n, acct) in [(1, "a"), (2, "b")] {
            let rec = record(n, acct);
            store.insert_group(&rec).unwrap();
            store
                .modify_group(&rec.id, &mut |r| r.status = GroupStatus::Running)
                .unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(30));
        let rec = record(1, "a");
        store
            .modify_group(&rec.id, &mut |r| r.status = GroupStatus::Succeeded)
            .unwrap();
        let now = Utc::now();
        let from = now - Duration::hours(1);
        let mine = control.charges(Some("a"), from, now).unwrap();
        assert_eq!(mine.len(), 1);
        let c = &mine[0];
        assert_eq!(
            (c.group_id.as_str(), c.currency.as_str()),
            (rec.id.as_str(), "CNY")
        );
        let period = &store.group_ledger(&rec.id).unwrap()[0];
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
        assert_eq!(control.charges(None, from, now).unwrap().len(), 2);
        assert!(control
            .charges(
                Some("a"),
                now + Duration::hours(1),
                now + Duration::hours(2)
            )
            .unwrap()
            .is_empty());
    }
}
