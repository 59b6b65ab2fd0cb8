//! DescribeUsage: the bill of the caller's account, or, for an operator's key, of the account
//! it names or of every account (`AccountId=*`); any other key naming an account not its own
//! is refused with 403 before anything is read.

use berth_control::Control;
use berth_eci::request::{UsageAccount, UsageRequest};
use berth_eci::response::DescribeUsageResponse;
use berth_eci::ApiError;

use crate::actions::map_err;
use crate::Reply;

/// 403 `Forbidden.Operator`: the key's account may read only its own bill.
fn not_operator(caller: &str, asked: &str) -> ApiError {
    ApiError::new(
        403,
        "Forbidden.Operator",
        format!(
            "The specified parameter AccountId names another account, which only an operator's key may read: {caller} asked for {asked}"
        ),
    )
}

pub(crate) async fn describe_usage(
    control: &Control,
    caller: &str,
    r: UsageRequest,
    rid: &str,
) -> Result<Reply, ApiError> {
    let account: Option<&str> = match &r.account {
        UsageAccount::Own => Some(caller),
        UsageAccount::Named(a) if a == caller => Some(caller),
        other => {
            let operator = control
                .is_operator(caller)
                .await
                .map_err(ApiError::internal)?;
            match other {
                UsageAccount::Named(a) if operator => Some(a.as_str()),
                UsageAccount::All if operator => None,
                UsageAccount::Named(a) => return Err(not_operator(caller, a)),
                _ => return Err(not_operator(caller, "*")),
            }
        }
    };
    let bill = if r.group_ids.is_empty() {
        control.bill(account, r.since, r.until, &r.group_by).await
    } else {
        // Ids that name no group name none of the caller's: their lines are simply absent.
        let ids: Vec<berth_core::GroupId> = r
            .group_ids
            .iter()
            .filter_map(|i| berth_core::GroupId::parse(i))
            .collect();
        control
            .bill_of_groups(account, &ids, r.since, r.until, &r.group_by)
            .await
    }
    .map_err(map_err)?;
    let mut body =
        DescribeUsageResponse::from_bill(&bill, &control.billing_prices(), account.unwrap_or("*"));
    body.request_id = rid.to_string();
    serde_json::to_string(&body)
        .map(Reply::Text)
        .map_err(ApiError::internal)
}
