//! The price of one group size under a region's prices, in ECI's units: the group's price per
//! second (`Price.TradePrice`: 2 vCPU and 4 GiB at ECI's prices cost 0.00012252 CNY a second)
//! and the compute price per hour, pay-as-you-go and preemptible (`SpotPrices`).

use rust_decimal::{Decimal, RoundingStrategy};

use super::catalog::RegionPrices;
use super::FREE_EPHEMERAL_STORAGE_GIB;
use crate::size::Size;

pub const SECONDS_PER_HOUR: i64 = 3600;
/// Decimal places of a per-second price taken from an hourly one (half away from zero, as
/// ECI rounds): hourly prices divided by 3600 rarely end, and twelve places keep any bill
/// exact to far below the six it shows.
pub const SECOND_PRICE_DECIMALS: u32 = 12;

/// What one size costs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    pub currency: String,
    /// The vCPU of the size for one second.
    pub cpu_second: Decimal,
    /// The memory of the size for one second.
    pub memory_second: Decimal,
    /// The temporary storage above the free 30 GiB for one second.
    pub storage_second: Decimal,
    /// The whole group for one second.
    pub second: Decimal,
    /// The GiB of temporary storage that are billed.
    pub billed_storage_gib: u32,
    /// vCPU and memory for one hour, pay-as-you-go.
    pub compute_hour: Decimal,
    /// vCPU and memory for one hour, preemptible (temporary storage is never discounted).
    pub spot_hour: Decimal,
}

/// An offered size as an exact decimal (sizes are multiples of a quarter).
fn exact(x: f64) -> Decimal {
    Decimal::from((x * 4.0).round() as i64) / Decimal::from(4)
}

/// The price of `size` with `storage_gib` of temporary storage.
pub fn quote(p: &RegionPrices, size: Size, storage_gib: u32) -> Quote {
    let cpu_second = exact(size.cpu) * p.vcpu_second;
    let memory_second = exact(size.memory) * p.memory_gib_second;
    let billed = storage_gib.saturating_sub(FREE_EPHEMERAL_STORAGE_GIB);
    let storage_hour = Decimal::from(billed) * p.storage_gib_hour;
    let storage_second = (storage_hour / Decimal::from(SECONDS_PER_HOUR))
        .round_dp_with_strategy(
            SECOND_PRICE_DECIMALS,
            RoundingStrategy::MidpointAwayFromZero,
        )
        .normalize();
    let compute_hour = (cpu_second + memory_second) * Decimal::from(SECONDS_PER_HOUR);
    Quote {
        currency: p.currency.clone(),
        cpu_second: cpu_second.normalize(),
        memory_second: memory_second.normalize(),
        storage_second,
        second: (cpu_second + memory_second + storage_second).normalize(),
        billed_storage_gib: billed,
        compute_hour: compute_hour.normalize(),
        spot_hour: (compute_hour * p.spot_ratio).normalize(),
    }
}

/// A size as ECI names vCPU-and-memory specifications: `2-4Gi`, `0.25-0.5Gi`.
pub fn size_label(size: Size) -> String {
    format!(
        "{}-{}Gi",
        exact(size.cpu).normalize(),
        exact(size.memory).normalize()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn size(cpu: f64, memory: f64) -> Size {
        Size { cpu, memory }
    }

    #[test]
    fn ecis_own_example() {
        let q = quote(&RegionPrices::builtin(), size(2.0, 4.0), 30);
        assert_eq!(q.second, d("0.00012252"));
        assert_eq!(q.second.to_string(), "0.00012252");
        assert_eq!(q.cpu_second, d("0.000098"));
        assert_eq!(q.memory_second, d("0.00002452"));
        assert_eq!(q.storage_second, Decimal::ZERO);
        assert_eq!(q.billed_storage_gib, 0);
        assert_eq!(q.compute_hour.to_string(), "0.441072");
        assert_eq!(q.spot_hour.to_string(), "0.1323216");
        assert_eq!(q.currency, "CNY");
    }

    #[test]
    fn twelve_seconds_of_one_vcpu() {
        let q = quote(&RegionPrices::builtin(), size(1.0, 2.0), 0);
        assert_eq!((q.cpu_second * Decimal::from(12)).to_string(), "0.000588");
    }

    #[test]
    fn storage_above_the_free_size_is_billed_by_the_hour() {
        let p = RegionPrices::builtin();
        let q = quote(&p, size(0.25, 0.5), 40);
        assert_eq!(q.billed_storage_gib, 10);
        // 10 GiB × 0.00203 / 3600 = 0.000005638888… → 12 places.
        assert_eq!(q.storage_second.to_string(), "0.000005638889");
        assert_eq!(q.second, q.cpu_second + q.memory_second + q.storage_second);
        // Storage is not part of the compute price, nor discounted for spot.
        assert_eq!(
            q.compute_hour,
            (q.cpu_second + q.memory_second) * Decimal::from(3600)
        );
        assert_eq!(quote(&p, size(0.25, 0.5), 5).billed_storage_gib, 0);
    }

    #[test]
    fn every_offered_size_is_exact() {
        let p = RegionPrices::builtin();
        let q = quote(&p, size(0.25, 0.5), 30);
        assert_eq!(q.second, d("0.00001225") + d("0.000003065"));
        let q = quote(&p, size(64.0, 512.0), 65_536);
        assert_eq!(q.cpu_second, d("0.003136"));
        assert!(q.second > q.cpu_second);
    }

    #[test]
    fn labels() {
        assert_eq!(size_label(size(2.0, 4.0)), "2-4Gi");
        assert_eq!(size_label(size(0.25, 0.5)), "0.25-0.5Gi");
    }
}
