//! The price catalog: unit prices per region and currency, from berth's built-in defaults
//! (ECI's published pay-as-you-go prices) or from an operator's file, checked once when it is
//! read so that no later arithmetic can meet a negative, absurd or overflowing price.

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// Most regions one catalog may list.
pub const MAX_REGIONS: usize = 256;
/// Most decimal places of a unit price.
const MAX_PRICE_DECIMALS: u32 = 12;
/// Largest unit price: far above any real one, and small enough that a price times any
/// size and any number of seconds berth counts stays within a [`Decimal`].
const MAX_PRICE: i64 = 1_000_000;

/// The unit prices of one region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionPrices {
    /// ISO 4217 code (`CNY`, `USD`, …).
    pub currency: String,
    /// One vCPU for one second.
    pub vcpu_second: Decimal,
    /// One GiB of memory for one second.
    pub memory_gib_second: Decimal,
    /// One GiB of temporary storage above the free 30 GiB for one hour.
    pub storage_gib_hour: Decimal,
    /// One GiB of image-cache storage for one hour.
    pub image_cache_gib_hour: Decimal,
    /// The share of the pay-as-you-go compute price a preemptible group pays (0 < r ≤ 1).
    pub spot_ratio: Decimal,
}

impl RegionPrices {
    /// ECI's published pay-as-you-go prices, in CNY (docs/API-EXTENSIONS.md has the sources):
    /// vCPU 0.000049 per second and memory 0.00000613 per GiB-second (ECI's instance billing
    /// page); image-cache storage 0.000167 per GiB-hour (a cache is a snapshot, priced as OSS
    /// Standard storage, 0.12 per GiB-month over 720 hours); temporary storage 0.00203 per
    /// GiB-hour (ECI bills it as a PL1 ESSD, published only in USD, 0.03188 per 100 GiB-hour,
    /// taken to CNY at the ratio of ECI's own CNY and USD vCPU prices, 0.000049 / 0.0000077);
    /// spot groups pay 0.3 of the compute price (ECI: preemptible instances save 30–90 %).
    pub fn builtin() -> Self {
        Self {
            currency: "CNY".into(),
            vcpu_second: Decimal::new(49, 6),
            memory_gib_second: Decimal::new(613, 8),
            storage_gib_hour: Decimal::new(203, 5),
            image_cache_gib_hour: Decimal::new(167, 6),
            spot_ratio: Decimal::new(3, 1),
        }
    }

    fn merged(&self, f: &PriceFields) -> Self {
        let pick = |o: &Option<Amount>, d: Decimal| o.as_ref().map_or(d, |a| a.0);
        Self {
            currency: f.currency.clone().unwrap_or_else(|| self.currency.clone()),
            vcpu_second: pick(&f.vcpu_second, self.vcpu_second),
            memory_gib_second: pick(&f.memory_gib_second, self.memory_gib_second),
            storage_gib_hour: pick(&f.storage_gib_hour, self.storage_gib_hour),
            image_cache_gib_hour: pick(&f.image_cache_gib_hour, self.image_cache_gib_hour),
            spot_ratio: pick(&f.spot_ratio, self.spot_ratio),
        }
    }

    fn check(&self, at: &str) -> Result<(), PriceError> {
        let c = &self.currency;
        if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(PriceError::Currency {
                at: at.into(),
                currency: c.clone(),
            });
        }
        for (field, v) in [
            ("vcpu_second", self.vcpu_second),
            ("memory_gib_second", self.memory_gib_second),
            ("storage_gib_hour", self.storage_gib_hour),
            ("image_cache_gib_hour", self.image_cache_gib_hour),
        ] {
            if v.is_sign_negative()
                || v > Decimal::from(MAX_PRICE)
                || v.scale() > MAX_PRICE_DECIMALS
            {
                return Err(PriceError::Amount {
                    at: at.into(),
                    field,
                    value: v,
                });
            }
        }
        let r = self.spot_ratio;
        if r <= Decimal::ZERO || r > Decimal::ONE || r.scale() > MAX_PRICE_DECIMALS {
            return Err(PriceError::SpotRatio {
                at: at.into(),
                value: r,
            });
        }
        Ok(())
    }
}

/// The prices of every region: the operator's `[default]` (over berth's built-in defaults)
/// and the regions the file lists (each over `[default]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceCatalog {
    default: RegionPrices,
    regions: BTreeMap<String, RegionPrices>,
}

impl Default for PriceCatalog {
    fn default() -> Self {
        Self {
            default: RegionPrices::builtin(),
            regions: BTreeMap::new(),
        }
    }
}

impl PriceCatalog {
    /// The catalog a file describes, checked.
    pub fn from_file(file: &PriceFile) -> Result<Self, PriceError> {
        if file.region.len() > MAX_REGIONS {
            return Err(PriceError::TooManyRegions(file.region.len()));
        }
        let default = RegionPrices::builtin().merged(&file.default);
        default.check("[default]")?;
        let mut regions = BTreeMap::new();
        for (name, fields) in &file.region {
            let ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(PriceError::RegionName(name.clone()));
            }
            let prices = default.merged(fields);
            prices.check(&format!("[region.{name}]"))?;
            regions.insert(name.clone(), prices);
        }
        Ok(Self { default, regions })
    }

    /// The prices of `region`: its own when the catalog lists it, the default ones when it is
    /// `served` (the region this berth serves), else none.
    pub fn for_region(&self, region: &str, served: &str) -> Option<&RegionPrices> {
        self.regions
            .get(region)
            .or_else(|| (region == served).then_some(&self.default))
    }

    /// The prices of regions the catalog does not list.
    pub fn default_prices(&self) -> &RegionPrices {
        &self.default
    }
}

/// A price file as written (TOML): `[default]` and `[region.NAME]` tables of optional fields.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceFile {
    #[serde(default)]
    pub default: PriceFields,
    #[serde(default)]
    pub region: BTreeMap<String, PriceFields>,
}

/// The fields of one table of a price file; a missing one keeps the level above.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceFields {
    pub currency: Option<String>,
    pub vcpu_second: Option<Amount>,
    pub memory_gib_second: Option<Amount>,
    pub storage_gib_hour: Option<Amount>,
    pub image_cache_gib_hour: Option<Amount>,
    pub spot_ratio: Option<Amount>,
}

/// A decimal read exactly: from a string (`"0.000049"`) or an integer. A float is refused,
/// since its text has already been rounded to binary when a parser hands it over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amount(pub Decimal);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal number written as a string, such as \"0.000049\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Amount, E> {
                Decimal::from_str_exact(s.trim())
                    .map(Amount)
                    .map_err(|_| E::custom(format!("{s:?} is not an exact decimal number")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Amount, E> {
                Ok(Amount(Decimal::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Amount, E> {
                Ok(Amount(Decimal::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Amount, E> {
                Err(E::custom(format!(
                    "write {v} as a string (\"{v}\") so that it is read exactly"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A price file that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PriceError {
    #[error("{at}: currency {currency:?} is not an ISO 4217 code of three capital letters")]
    Currency { at: String, currency: String },
    #[error("{at}: {field} = {value} must be between 0 and {MAX_PRICE} with at most {MAX_PRICE_DECIMALS} decimal places")]
    Amount {
        at: String,
        field: &'static str,
        value: Decimal,
    },
    #[error("{at}: spot_ratio = {value} must be above 0 and at most 1, with at most {MAX_PRICE_DECIMALS} decimal places")]
    SpotRatio { at: String, value: Decimal },
    #[error("region name {0:?} must be 1 to 64 of a-z, 0-9 and -")]
    RegionName(String),
    #[error("{0} regions listed; at most {MAX_REGIONS}")]
    TooManyRegions(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn file(default: PriceFields, regions: &[(&str, PriceFields)]) -> PriceFile {
        PriceFile {
            default,
            region: regions
                .iter()
                .map(|(n, f)| (n.to_string(), f.clone()))
                .collect(),
        }
    }

    #[test]
    fn builtin_prices_are_eci_published_ones() {
        let p = RegionPrices::builtin();
        assert_eq!(p.currency, "CNY");
        assert_eq!(p.vcpu_second, d("0.000049"));
        assert_eq!(p.memory_gib_second, d("0.00000613"));
        assert_eq!(p.storage_gib_hour, d("0.00203"));
        assert_eq!(p.image_cache_gib_hour, d("0.000167"));
        assert_eq!(p.spot_ratio, d("0.3"));
        p.check("builtin").unwrap();
    }

    #[test]
    fn regions_fall_back_to_default_which_falls_back_to_builtin() {
        let f = file(
            PriceFields {
                currency: Some("USD".into()),
                vcpu_second: Some(Amount(d("0.0000077"))),
                ..Default::default()
            },
            &[(
                "eu-local",
                PriceFields {
                    memory_gib_second: Some(Amount(d("0.00000096"))),
                    ..Default::default()
                },
            )],
        );
        let c = PriceCatalog::from_file(&f).unwrap();
        let eu = c.for_region("eu-local", "local").unwrap();
        assert_eq!(eu.currency, "USD");
        assert_eq!(eu.vcpu_second, d("0.0000077"));
        assert_eq!(eu.memory_gib_second, d("0.00000096"));
        assert_eq!(eu.storage_gib_hour, d("0.00203"));
        let local = c.for_region("local", "local").unwrap();
        assert_eq!(local.memory_gib_second, d("0.00000613"));
        assert_eq!(local.vcpu_second, d("0.0000077"));
        assert!(c.for_region("elsewhere", "local").is_none());
    }

    #[test]
    fn bad_files_are_refused_by_field() {
        let bad = |f: PriceFields| PriceCatalog::from_file(&file(f, &[])).unwrap_err();
        assert!(matches!(
            bad(PriceFields {
                currency: Some("yuan".into()),
                ..Default::default()
            }),
            PriceError::Currency { .. }
        ));
        let e = bad(PriceFields {
            vcpu_second: Some(Amount(d("-1"))),
            ..Default::default()
        });
        assert!(e.to_string().contains("vcpu_second"), "{e}");
        assert!(matches!(
            bad(PriceFields {
                storage_gib_hour: Some(Amount(d("1000001"))),
                ..Default::default()
            }),
            PriceError::Amount { .. }
        ));
        assert!(matches!(
            bad(PriceFields {
                memory_gib_second: Some(Amount(d("0.0000000000001"))),
                ..Default::default()
            }),
            PriceError::Amount { .. }
        ));
        for r in ["0", "1.5", "-0.1"] {
            assert!(matches!(
                bad(PriceFields {
                    spot_ratio: Some(Amount(d(r))),
                    ..Default::default()
                }),
                PriceError::SpotRatio { .. }
            ));
        }
        let e = PriceCatalog::from_file(&file(
            PriceFields::default(),
            &[("Bad_Name", PriceFields::default())],
        ))
        .unwrap_err();
        assert!(matches!(e, PriceError::RegionName(_)));
    }
}
