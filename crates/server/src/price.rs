//! DescribeContainerGroupPrice: the decoded size priced with the catalog of the region asked
//! (`berth_core::price`), answered as text so that every amount keeps its exact digits.

use berth_control::Control;
use berth_core::price::{quote, Quote, RegionPrices};
use berth_core::{Size, DEFAULT_EPHEMERAL_STORAGE_GIB};
use berth_eci::request::PriceRequest;
use berth_eci::response::DescribeContainerGroupPriceResponse;
use berth_eci::ApiError;

use crate::Reply;

/// The unit prices of `region`, or DescribeContainerGroupPrice's error.
fn region_prices(control: &Control, region: &str) -> Result<RegionPrices, ApiError> {
    let catalog = control.prices();
    let served = control.region();
    catalog.for_region(region, served).cloned().ok_or_else(|| {
        ApiError::new(
            400,
            "InvalidRegionId.NotFound",
            format!(
                "The specified region has no prices here: {region} (this berth serves {served})"
            ),
        )
    })
}

pub(crate) fn describe_price(
    control: &Control,
    r: PriceRequest,
    rid: &str,
) -> Result<Reply, ApiError> {
    let prices = region_prices(control, &r.region_id)?;
    let q = quote(&prices, r.size, r.ephemeral_storage);
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

/// Every offered size with the price DescribeContainerGroupPrice answers for it in `region`
/// (with the free temporary storage): one read of the catalog for the console's size table,
/// instead of one DescribeContainerGroupPrice a size.
pub fn size_prices(state: &crate::AppState, region: &str) -> Result<Vec<(Size, Quote)>, ApiError> {
    let prices = region_prices(&state.control, region)?;
    Ok(berth_core::size::offered()
        .map(|size| (size, quote(&prices, size, DEFAULT_EPHEMERAL_STORAGE_GIB)))
        .collect())
}
