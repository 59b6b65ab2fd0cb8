//! DescribeContainerGroupPrice: the decoded size priced with the catalog of the region asked
//! (`berth_core::price`), answered as text so that every amount keeps its exact digits.

use berth_control::Control;
use berth_core::price::quote;
use berth_eci::request::PriceRequest;
use berth_eci::response::DescribeContainerGroupPriceResponse;
use berth_eci::ApiError;

use crate::Reply;

pub(crate) fn describe_price(
    control: &Control,
    r: PriceRequest,
    rid: &str,
) -> Result<Reply, ApiError> {
    let catalog = control.prices();
    let served = control.region();
    let prices = catalog.for_region(&r.region_id, served).ok_or_else(|| {
        ApiError::new(
            400,
            "InvalidRegionId.NotFound",
            format!(
                "The specified region has no prices here: {} (this berth serves {served})",
                r.region_id
            ),
        )
    })?;
    let q = quote(prices, r.size, r.ephemeral_storage);
    let zone = r.zone_id.unwrap_or_else(|| format!("{}-a", r.region_id));
    let mut body = DescribeContainerGroupPriceResponse::from_quote(
        &q,
        r.size,
        &zone,
        r.spot_strategy.is_spot(),
    );
    body.request_id = rid.to_string();
    serde_json::to_string(&body)
        .map(Reply::Text)
        .map_err(ApiError::internal)
}
