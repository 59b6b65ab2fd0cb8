//! DescribeContainerGroupPrice's answer: ECI keeps XML-style wrapper objects here
//! (`PriceInfo.Price.DetailInfos.DetailInfo[]`, `PriceInfo.Rules.Rule[]`,
//! `PriceInfo.SpotPrices.SpotPrice[]`, ECI_API.md §5). Prices are JSON numbers written from
//! exact decimals (never through a float): `Price` per second, `SpotPrices` per hour, as ECI.
//! Written only: berth's own client does not read it.

use berth_core::price::{size_label, Decimal, Quote};
use berth_core::Size;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// An amount written as a JSON number with exactly its decimal digits (`0.00012252`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Money(pub Decimal);

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // `Decimal`'s text never has an exponent, so it is a JSON number as it stands.
        let raw = RawValue::from_string(self.0.normalize().to_string())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeContainerGroupPriceResponse {
    pub request_id: String,
    pub price_info: PriceInfo,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PriceInfo {
    pub price: Price,
    pub rules: Rules,
    pub spot_prices: SpotPrices,
}

/// The group's price per second: `TradePrice` = `OriginalPrice` − `DiscountPrice`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Price {
    pub currency: String,
    pub original_price: Money,
    pub discount_price: Money,
    pub trade_price: Money,
    pub detail_infos: DetailInfos,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DetailInfos {
    pub detail_info: Vec<DetailInfo>,
}

/// One priced resource of the group, per second.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DetailInfo {
    pub resource: String,
    pub original_price: Money,
    pub discount_price: Money,
    pub trade_price: Money,
    pub rules: Rules,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Rules {
    pub rule: Vec<Rule>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Rule {
    pub rule_id: i64,
    pub description: String,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SpotPrices {
    pub spot_price: Vec<SpotPrice>,
}

/// The compute of the size per hour, pay-as-you-go (`OriginPrice`) and preemptible.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SpotPrice {
    /// The size as ECI names vCPU-and-memory specifications (`2-4Gi`): berth has no ECS types.
    pub instance_type: String,
    pub zone_id: String,
    pub origin_price: Money,
    pub spot_price: Money,
}

/// A resource priced at its full price.
fn detail(resource: &str, per_second: Decimal) -> DetailInfo {
    DetailInfo {
        resource: resource.into(),
        original_price: Money(per_second),
        discount_price: Money(Decimal::ZERO),
        trade_price: Money(per_second),
        rules: Rules::default(),
    }
}

impl DescribeContainerGroupPriceResponse {
    /// The answer for `quote` of `size`; spot prices only when `spot` was asked for.
    pub fn from_quote(q: &Quote, size: Size, zone_id: &str, spot: bool) -> Self {
        let mut details = vec![
            detail("Cpu", q.cpu_second),
            detail("Memory", q.memory_second),
        ];
        if q.billed_storage_gib > 0 {
            details.push(detail("EphemeralStorage", q.storage_second));
        }
        let spot_price = if spot {
            vec![SpotPrice {
                instance_type: size_label(size),
                zone_id: zone_id.into(),
                origin_price: Money(q.compute_hour),
                spot_price: Money(q.spot_hour),
            }]
        } else {
            Vec::new()
        };
        Self {
            request_id: String::new(),
            price_info: PriceInfo {
                price: Price {
                    currency: q.currency.clone(),
                    original_price: Money(q.second),
                    discount_price: Money(Decimal::ZERO),
                    trade_price: Money(q.second),
                    detail_infos: DetailInfos {
                        detail_info: details,
                    },
                },
                rules: Rules::default(),
                spot_prices: SpotPrices { spot_price },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::price::{quote, RegionPrices};

    fn answer(cpu: f64, memory: f64, storage: u32, spot: bool) -> serde_json::Value {
        let size = Size { cpu, memory };
        let q = quote(&RegionPrices::builtin(), size, storage);
        let mut r = DescribeContainerGroupPriceResponse::from_quote(&q, size, "local-a", spot);
        r.request_id = "rid".into();
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"TradePrice\":"), "{text}");
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn the_shape_the_sdks_read() {
        let v = answer(2.0, 4.0, 30, true);
        let p = &v["PriceInfo"]["Price"];
        assert_eq!(v["RequestId"], "rid");
        assert_eq!(p["Currency"], "CNY");
        assert_eq!(p["TradePrice"].to_string(), "0.00012252");
        assert_eq!(p["OriginalPrice"].to_string(), "0.00012252");
        assert_eq!(p["DiscountPrice"].to_string(), "0");
        let details = p["DetailInfos"]["DetailInfo"].as_array().unwrap();
        assert_eq!(details.len(), 2);
        assert_eq!(details[0]["Resource"], "Cpu");
        assert_eq!(details[0]["TradePrice"].to_string(), "0.000098");
        assert_eq!(details[1]["TradePrice"].to_string(), "0.00002452");
        assert!(details[0]["Rules"]["Rule"].as_array().unwrap().is_empty());
        assert!(v["PriceInfo"]["Rules"]["Rule"]
            .as_array()
            .unwrap()
            .is_empty());
        let spot = &v["PriceInfo"]["SpotPrices"]["SpotPrice"][0];
        assert_eq!(spot["InstanceType"], "2-4Gi");
        assert_eq!(spot["ZoneId"], "local-a");
        assert_eq!(spot["OriginPrice"].to_string(), "0.441072");
        assert_eq!(spot["SpotPrice"].to_string(), "0.1323216");
    }

    #[test]
    fn the_exact_text_of_amounts() {
        let size = Size {
            cpu: 2.0,
            memory: 4.0,
        };
        let q = quote(&RegionPrices::builtin(), size, 30);
        let text = serde_json::to_string(&DescribeContainerGroupPriceResponse::from_quote(
            &q, size, "z", false,
        ))
        .unwrap();
        assert!(text.contains("\"TradePrice\":0.00012252,"), "{text}");
        assert!(text.contains("\"SpotPrices\":{\"SpotPrice\":[]}"), "{text}");
    }

    #[test]
    fn storage_above_the_free_size_is_a_resource() {
        let v = answer(1.0, 2.0, 50, false);
        let details = v["PriceInfo"]["Price"]["DetailInfos"]["DetailInfo"]
            .as_array()
            .unwrap();
        assert_eq!(details[2]["Resource"], "EphemeralStorage");
        // 20 GiB × 0.00203 / 3600 = 0.0000112777… → 0.000011277778.
        assert_eq!(details[2]["TradePrice"].to_string(), "0.000011277778");
        assert_eq!(
            v["PriceInfo"]["Price"]["TradePrice"].to_string(),
            "0.000072537778"
        );
    }
}
