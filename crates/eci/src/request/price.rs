//! DescribeContainerGroupPrice (ECI_API.md §7 and §8.2): the size to price, rounded up to an
//! offered one as CreateContainerGroup does, its temporary storage and the spot terms asked.
//! berth prices by vCPU and memory only: an ECS `InstanceType` is refused by name.

use berth_core::price::Decimal;
use berth_core::spot::{DEFAULT_SPOT_DURATION_HOURS, MAX_SPOT_DURATION_HOURS};
use berth_core::{normalize_size, Size, SpotStrategy, DEFAULT_EPHEMERAL_STORAGE_GIB};

use super::create::{ephemeral_storage, positive};
use crate::error::ApiError;
use crate::params::Params;

/// Most decimal places of `SpotPriceLimit` (ECI: "up to three decimal places").
pub const SPOT_PRICE_LIMIT_DECIMALS: u32 = 3;
/// Largest `SpotPriceLimit` taken (per hour).
pub const MAX_SPOT_PRICE_LIMIT: i64 = 1_000_000;

/// DescribeContainerGroupPrice.
#[derive(Clone, Debug, PartialEq)]
pub struct PriceRequest {
    pub region_id: String,
    pub zone_id: Option<String>,
    /// The offered size the request rounds up to (2 vCPU and 4 GiB when none is asked).
    pub size: Size,
    /// GiB of temporary storage (30, free, when not asked).
    pub ephemeral_storage: u32,
    pub spot_strategy: SpotStrategy,
    /// Highest hourly price, exact as sent.
    pub spot_price_limit: Option<Decimal>,
    pub spot_duration_hours: u32,
}

impl PriceRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        if let Some(t) = scalar(p, "InstanceType") {
            return Err(ApiError::invalid_parameter(
                "InstanceType",
                format!(
                    "is not supported: berth has no table of ECS instance types and prices \
                     groups by vCPU and memory; ask with Cpu and Memory instead of {t:?}"
                ),
            ));
        }
        if let Some(c) = scalar(p, "ComputeCategory") {
            if c != "general" {
                return Err(ApiError::invalid_parameter(
                    "ComputeCategory",
                    format!("is not supported with {c:?}: berth has one compute category, general"),
                ));
            }
        }
        let region_id = p.required("RegionId")?;
        let (cpu, memory) = (positive(p, "Cpu")?, positive(p, "Memory")?);
        let size = normalize_size(cpu, memory).map_err(|e| {
            ApiError::invalid_parameter("Cpu and Memory", format!("ask for no offered size: {e}"))
        })?;
        let SpotAsk {
            strategy: spot_strategy,
            price_limit: spot_price_limit,
            duration_hours: spot_duration_hours,
        } = spot_ask(p)?;
        Ok(Self {
            region_id,
            zone_id: p.string("ZoneId"),
            size,
            ephemeral_storage: ephemeral_storage(p)?.unwrap_or(DEFAULT_EPHEMERAL_STORAGE_GIB),
            spot_strategy,
            spot_price_limit,
            spot_duration_hours,
        })
    }
}

/// The spot terms a request asks for (`SpotStrategy`, `SpotPriceLimit`, `SpotDuration`), as
/// DescribeContainerGroupPrice and CreateContainerGroup take them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SpotAsk {
    pub strategy: SpotStrategy,
    pub price_limit: Option<Decimal>,
    pub duration_hours: u32,
}

pub(crate) fn spot_ask(p: &Params) -> Result<SpotAsk, ApiError> {
    let spot_strategy = match scalar(p, "SpotStrategy") {
        None => SpotStrategy::NoSpot,
        Some(s) => SpotStrategy::parse(s).ok_or_else(|| {
            ApiError::invalid_parameter(
                "SpotStrategy",
                format!("must be NoSpot, SpotAsPriceGo or SpotWithPriceLimit, got {s:?}"),
            )
        })?,
    };
    let spot_price_limit = scalar(p, "SpotPriceLimit")
        .map(spot_price_limit)
        .transpose()?;
    if spot_strategy == SpotStrategy::SpotWithPriceLimit && spot_price_limit.is_none() {
        return Err(ApiError::missing_parameter("SpotPriceLimit"));
    }
    let spot_duration_hours = match p.int::<u32>("SpotDuration")? {
        None => DEFAULT_SPOT_DURATION_HOURS,
        Some(h) if h <= MAX_SPOT_DURATION_HOURS => h,
        Some(h) => {
            return Err(ApiError::value_exceeded(
                "SpotDuration",
                format!("must be 0 to {MAX_SPOT_DURATION_HOURS} hours, got {h}"),
            ))
        }
    };
    Ok(SpotAsk {
        strategy: spot_strategy,
        price_limit: spot_price_limit,
        duration_hours: spot_duration_hours,
    })
}

/// A value that is neither missing, empty nor the SDKs' `None`.
fn scalar<'a>(p: &'a Params, name: &str) -> Option<&'a str> {
    p.raw(name)
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "None")
}

/// `SpotPriceLimit` read exactly from its text: a positive decimal of at most three places.
fn spot_price_limit(v: &str) -> Result<Decimal, ApiError> {
    let bad =
        |why: &str| ApiError::invalid_parameter("SpotPriceLimit", format!("{why}, got {v:?}"));
    let d = Decimal::from_str_exact(v).map_err(|_| bad("must be a decimal number"))?;
    if d <= Decimal::ZERO || d > Decimal::from(MAX_SPOT_PRICE_LIMIT) {
        return Err(bad(&format!(
            "must be above 0 and at most {MAX_SPOT_PRICE_LIMIT} per hour"
        )));
    }
    if d.normalize().scale() > SPOT_PRICE_LIMIT_DECIMALS {
        return Err(bad(&format!(
            "may have at most {SPOT_PRICE_LIMIT_DECIMALS} decimal places"
        )));
    }
    Ok(d.normalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(q: &str) -> Result<PriceRequest, ApiError> {
        PriceRequest::decode(&Params::parse(q, None).unwrap())
    }

    #[test]
    fn defaults_and_rounding() {
        let r = decode("RegionId=local").unwrap();
        assert_eq!((r.size.cpu, r.size.memory), (2.0, 4.0));
        assert_eq!(r.ephemeral_storage, 30);
        assert_eq!(r.spot_strategy, SpotStrategy::NoSpot);
        assert_eq!(r.spot_duration_hours, 1);
        let r =
            decode("RegionId=local&Cpu=7&Memory=13&EphemeralStorage=50&ZoneId=local-a").unwrap();
        assert_eq!((r.size.cpu, r.size.memory), (8.0, 16.0));
        assert_eq!(r.ephemeral_storage, 50);
        assert_eq!(r.zone_id.as_deref(), Some("local-a"));
        let r = decode("RegionId=local&InstanceType=None&ComputeCategory=general").unwrap();
        assert_eq!(r.size.cpu, 2.0);
    }

    #[test]
    fn spot_terms() {
        let r = decode(
            "RegionId=local&SpotStrategy=SpotWithPriceLimit&SpotPriceLimit=0.2&SpotDuration=0",
        )
        .unwrap();
        assert_eq!(r.spot_strategy, SpotStrategy::SpotWithPriceLimit);
        assert_eq!(r.spot_price_limit.unwrap().to_string(), "0.2");
        assert_eq!(r.spot_duration_hours, 0);
        let r = decode("RegionId=local&SpotStrategy=SpotAsPriceGo&SpotPriceLimit=1.50").unwrap();
        assert_eq!(r.spot_price_limit.unwrap().to_string(), "1.5");
    }

    #[test]
    fn bad_input_is_refused_by_name() {
        let code = |q: &str| {
            let e = decode(q).unwrap_err();
            (e.status, e.code, e.message)
        };
        let (s, c, m) = code("RegionId=local&InstanceType=ecs.c5.large");
        assert_eq!((s, c.as_str()), (400, "InvalidParameter"));
        assert!(
            m.contains("InstanceType") && m.contains("ecs.c5.large"),
            "{m}"
        );
        assert_eq!(code("Cpu=2").1, "MissingParameter");
        assert!(code("RegionId=local&ComputeCategory=economy")
            .2
            .contains("ComputeCategory"));
        assert!(code("RegionId=local&Cpu=65&Memory=1")
            .2
            .contains("Cpu and Memory"));
        assert!(code("RegionId=local&Cpu=-1").2.contains("Cpu"));
        assert!(code("RegionId=local&Memory=abc").2.contains("Memory"));
        assert!(code("RegionId=local&SpotStrategy=Cheap")
            .2
            .contains("SpotStrategy"));
        let (_, c, m) = code("RegionId=local&SpotStrategy=SpotWithPriceLimit");
        assert_eq!(c, "MissingParameter");
        assert!(m.contains("SpotPriceLimit"), "{m}");
        for v in [
            "0",
            "-1",
            "0.0001",
            "abc",
            "1e3",
            "2000000",
            "0.30000000000000004",
        ] {
            let m = code(&format!("RegionId=local&SpotPriceLimit={v}")).2;
            assert!(m.contains("SpotPriceLimit"), "{v}: {m}");
        }
        assert!(code("RegionId=local&SpotDuration=7")
            .2
            .contains("SpotDuration"));
        assert!(code("RegionId=local&SpotDuration=-1")
            .2
            .contains("SpotDuration"));
        assert!(code("RegionId=local&EphemeralStorage=0")
            .2
            .contains("EphemeralStorage"));
    }
}
