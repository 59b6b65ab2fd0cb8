//! Prices of what berth bills and their arithmetic (ECI_API.md §8.2): a catalog of unit prices
//! per region (`catalog.rs`), the price of one group size (`quote.rs`), the charge of one
//! billed period (`charge.rs`) and a bill of many, in lines (`bill.rs`). Money is an exact
//! [`Decimal`]: no amount is ever a float.

mod bill;
mod catalog;
mod charge;
mod quote;

pub use bill::{
    bill, minor_unit_digits, Amounts, Bill, BillLine, GroupBy, Held, Metered, TooManyLines,
    MAX_BILL_LINES, MAX_TAG_KEY,
};
pub use catalog::{PriceCatalog, PriceError, PriceFile, RegionPrices, MAX_REGIONS};
pub use charge::charge;
pub use quote::{quote, size_label, Quote, SECONDS_PER_HOUR, SECOND_PRICE_DECIMALS};
pub use rust_decimal::Decimal;

/// Temporary storage every group has free of charge (GiB); what a group asks above it is
/// billed (ECI_API.md §8.1).
pub const FREE_EPHEMERAL_STORAGE_GIB: u32 = crate::spec::DEFAULT_EPHEMERAL_STORAGE_GIB;
