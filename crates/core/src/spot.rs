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
