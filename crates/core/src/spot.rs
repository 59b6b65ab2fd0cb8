//! Preemptible (spot) instances as ECI asks for them (ECI_API.md §8.2): the bidding strategy
//! and the protection period.

use serde::{Deserialize, Serialize};

/// `SpotStrategy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpotStrategy {
    /// A pay-as-you-go instance.
    #[default]
    NoSpot,
    /// Preemptible, paying the market price of the moment of purchase.
    SpotAsPriceGo,
    /// Preemptible with a highest hourly price (`SpotPriceLimit`).
    SpotWithPriceLimit,
}

impl SpotStrategy {
    /// The strategy of its wire name (exact case, as ECI's values).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "NoSpot" => Some(Self::NoSpot),
            "SpotAsPriceGo" => Some(Self::SpotAsPriceGo),
            "SpotWithPriceLimit" => Some(Self::SpotWithPriceLimit),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSpot => "NoSpot",
            Self::SpotAsPriceGo => "SpotAsPriceGo",
            Self::SpotWithPriceLimit => "SpotWithPriceLimit",
        }
    }

    /// Whether the instance is preemptible.
    pub fn is_spot(self) -> bool {
        self != Self::NoSpot
    }
}

/// `SpotDuration` when not given: one hour of protection.
pub const DEFAULT_SPOT_DURATION_HOURS: u32 = 1;
/// The longest protection period ECS offers (hours); 0 is no protection.
pub const MAX_SPOT_DURATION_HOURS: u32 = 6;

/// The preemptible terms of a group: as asked (`SpotStrategy`, `SpotPriceLimit`,
/// `SpotDuration`), and the hourly price in force, fixed by the control plane at creation
/// (the catalog's compute price of the size times its `spot_ratio`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotTerms {
    pub strategy: SpotStrategy,
    /// `SpotPriceLimit`: the highest hourly price (exact decimal text), with
    /// `SpotWithPriceLimit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_limit: Option<String>,
    /// `SpotDuration`: hours of protection from reclaim after creation (0: none).
    pub duration_hours: u32,
    /// The hourly price in force (exact decimal text), set at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hour_price: Option<String>,
    /// `StrictSpot=false` (the `k8s.aliyun.com/eci-spot-fallback` annotation): when no
    /// preemptible group can be had at creation (no room now, or a `SpotPriceLimit` below the
    /// price), a pay-as-you-go group is created instead of waiting or being refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fallback: bool,
}

impl SpotTerms {
    /// The end of the protection period of a group created at `created`.
    pub fn protected_until(
        &self,
        created: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        created
            + chrono::Duration::hours(i64::from(self.duration_hours.min(MAX_SPOT_DURATION_HOURS)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in [
            SpotStrategy::NoSpot,
            SpotStrategy::SpotAsPriceGo,
            SpotStrategy::SpotWithPriceLimit,
        ] {
            assert_eq!(SpotStrategy::parse(s.as_str()), Some(s));
        }
        assert_eq!(SpotStrategy::parse("nospot"), None);
        assert!(!SpotStrategy::default().is_spot());
        assert!(SpotStrategy::SpotAsPriceGo.is_spot());
    }
}
