//! The charge of a billed period (ADR 0010): its milliseconds × the size it held × the unit
//! prices, as an exact decimal. Only temporary storage, priced by the hour, is divided (by
//! 3600) and so rounded, to [`SECOND_PRICE_DECIMALS`] places; rounding to the currency's
//! smallest unit belongs to an invoice's total alone.

use rust_decimal::{Decimal, RoundingStrategy};

use super::catalog::RegionPrices;
use super::quote::{SECONDS_PER_HOUR, SECOND_PRICE_DECIMALS};
use crate::metering::BilledTerms;

/// What `millis` of a period with `terms` cost under `prices`.
pub fn charge(prices: &RegionPrices, terms: &BilledTerms, millis: i64) -> Decimal {
    let secs = Decimal::new(millis.max(0), 3);
    let cpu = Decimal::new(i64::from(terms.cpu_milli), 3) * prices.vcpu_second;
    // MiB / 1024 ends (1024 is a power of two), so memory stays exact.
    let memory = Decimal::from(terms.memory_mib) / Decimal::from(1024) * prices.memory_gib_second;
    let storage = (Decimal::from(terms.storage_gib) * prices.storage_gib_hour * secs
        / Decimal::from(SECONDS_PER_HOUR))
    .round_dp_with_strategy(
        SECOND_PRICE_DECIMALS,
        RoundingStrategy::MidpointAwayFromZero,
    );
    ((cpu + memory) * secs + storage).normalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(cpu_milli: u32, memory_mib: u32, storage_gib: u32) -> BilledTerms {
        BilledTerms {
            cpu_milli,
            memory_mib,
            storage_gib,
        }
    }

    #[test]
    fn twelve_seconds_of_one_vcpu_is_0_000588() {
        let p = RegionPrices::builtin();
        assert_eq!(
            charge(&p, &terms(1000, 0, 0), 12_000).to_string(),
            "0.000588"
        );
    }

    #[test]
    fn one_second_of_ecis_example_size() {
        let p = RegionPrices::builtin();
        assert_eq!(
            charge(&p, &terms(2000, 4096, 0), 1000).to_string(),
            "0.00012252"
        );
        // Milliseconds count: 1.5 s of it.
        assert_eq!(
            charge(&p, &terms(2000, 4096, 0), 1500).to_string(),
            "0.00018378"
        );
        // An hour of a quarter vCPU and 512 MiB.
        assert_eq!(
            charge(&p, &terms(250, 512, 0), 3_600_000).to_string(),
            "0.055134"
        );
    }

    #[test]
    fn storage_by_the_hour() {
        let p = RegionPrices::builtin();
        // 10 GiB above the free size for an hour: 10 × 0.00203.
        assert_eq!(
            charge(&p, &terms(0, 0, 10), 3_600_000).to_string(),
            "0.0203"
        );
        // For a second: 0.0203 / 3600 to 12 places.
        assert_eq!(
            charge(&p, &terms(0, 0, 10), 1000).to_string(),
            "0.000005638889"
        );
        assert_eq!(charge(&p, &terms(0, 0, 10), -5), Decimal::ZERO);
    }
}
