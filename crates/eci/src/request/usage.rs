//! DescribeUsage, berth's own action (docs/API-EXTENSIONS.md): the bill of `[Since, Until)`
//! in lines by group, UTC day, account or tag. Defaults: from the start of the current UTC
//! month to now. `AccountId` names another account (or `*`, every account): only an
//! operator's key may ask for one (checked where the key's account is known).

use berth_core::price::GroupBy;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use crate::error::ApiError;
use crate::params::Params;

/// Longest range one bill covers.
pub const MAX_USAGE_DAYS: i64 = 400;
/// Longest account name (as `berth admin account create` takes them).
const MAX_ACCOUNT_NAME: usize = 64;

/// Whose bill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsageAccount {
    /// The caller's own account (no `AccountId`).
    Own,
    /// One named account.
    Named(String),
    /// Every account (`AccountId=*`).
    All,
}

/// DescribeUsage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRequest {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub group_by: GroupBy,
    pub account: UsageAccount,
    /// `ContainerGroupIds` (berth's, at most 20): only these groups' periods, and no image
    /// cache; empty for the whole bill.
    pub group_ids: Vec<String>,
}

/// Most `ContainerGroupIds` of one DescribeUsage.
pub const MAX_USAGE_GROUP_IDS: usize = 20;

fn time(p: &Params, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    p.string(name)
        .map(|v| {
            DateTime::parse_from_rfc3339(v.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::invalid_parameter(
                        name,
                        format!("must be an RFC 3339 time such as 2026-12-01T00:00:00Z, got {v:?}"),
                    )
                })
        })
        .transpose()
}

/// The start of the UTC month of `now`.
fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(now.year(), now.month(), 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(now, |t| t.and_utc())
}

impl UsageRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        Self::decode_at(p, Utc::now())
    }

    /// Decodes with `now` as the current time.
    pub fn decode_at(p: &Params, now: DateTime<Utc>) -> Result<Self, ApiError> {
        let until = time(p, "Until")?.unwrap_or(now);
        let since = time(p, "Since")?.unwrap_or_else(|| month_start(now.min(until)));
        if since >= until {
            return Err(ApiError::invalid_parameter(
                "Since",
                format!("must be before Until ({until}), got {since}"),
            ));
        }
        if until - since > Duration::days(MAX_USAGE_DAYS) {
            return Err(ApiError::invalid_parameter(
                "Until",
                format!("must be at most {MAX_USAGE_DAYS} days after Since"),
            ));
        }
        let group_by = match p.string("GroupBy") {
            None => GroupBy::Group,
            Some(g) => GroupBy::parse(&g).ok_or_else(|| {
                ApiError::invalid_parameter(
                    "GroupBy",
                    format!("must be group, day, account or tag:KEY, got {g:?}"),
                )
            })?,
        };
        let account = match p.string("AccountId").as_deref() {
            None => UsageAccount::Own,
            Some("*") => UsageAccount::All,
            Some(a) => {
                let ok = a.len() <= MAX_ACCOUNT_NAME
                    && a.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                    && a.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !ok {
                    return Err(ApiError::invalid_parameter(
                        "AccountId",
                        format!("must be an account name or *, got {a:?}"),
                    ));
                }
                UsageAccount::Named(a.to_string())
            }
        };
        let group_ids = p
            .json_list("ContainerGroupIds", MAX_USAGE_GROUP_IDS)?
            .unwrap_or_default();
        Ok(Self {
            since,
            until,
            group_by,
            account,
            group_ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 18, 0, 0).unwrap()
    }

    fn decode(q: &str) -> Result<UsageRequest, ApiError> {
        UsageRequest::decode_at(&Params::parse(q, None).unwrap(), now())
    }

    #[test]
    fn container_group_ids_narrow_the_bill_to_at_most_twenty() {
        assert!(decode("").unwrap().group_ids.is_empty());
        let r = decode("ContainerGroupIds=%5B%22eci-a%22%2C%22eci-b%22%5D").unwrap();
        assert_eq!(r.group_ids, ["eci-a", "eci-b"]);
        let many: Vec<String> = (0..21).map(|i| format!("eci-{i}")).collect();
        let json = serde_json::to_string(&many).unwrap();
        let q = format!(
            "ContainerGroupIds={}",
            json.replace('[', "%5B")
                .replace(']', "%5D")
                .replace('"', "%22")
                .replace(',', "%2C")
        );
        assert!(decode(&q).is_err());
    }

    #[test]
    fn defaults_are_this_month_by_group_for_the_caller() {
        let r = decode("").unwrap();
        assert_eq!(r.since, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(r.until, now());
        assert_eq!(r.group_by, GroupBy::Group);
        assert_eq!(r.account, UsageAccount::Own);
        let r = decode("Since=2026-11-03T08:00:00%2B08:00&Until=2026-11-04T00:00:00Z&GroupBy=tag:team&AccountId=ops-1")
            .unwrap();
        assert_eq!(r.since, Utc.with_ymd_and_hms(2026, 11, 3, 0, 0, 0).unwrap());
        assert_eq!(r.group_by, GroupBy::Tag("team".into()));
        assert_eq!(r.account, UsageAccount::Named("ops-1".into()));
        assert_eq!(decode("AccountId=*").unwrap().account, UsageAccount::All);
        // An Until before this month: the default Since is the start of its month.
        let r = decode("Until=2026-10-10T00:00:00Z").unwrap();
        assert_eq!(r.since, Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap());
    }

    #[test]
    fn bad_input_names_the_parameter() {
        let bad = |q: &str, name: &str| {
            let e = decode(q).unwrap_err();
            assert_eq!(
                (e.status, e.code.as_str()),
                (400, "InvalidParameter"),
                "{q}"
            );
            assert!(e.message.contains(name), "{q}: {}", e.message);
        };
        bad("Since=yesterday", "Since");
        bad("Until=2026-13-01T00:00:00Z", "Until");
        bad(
            "Since=2026-12-03T18:00:00Z&Until=2026-12-03T18:00:00Z",
            "Since",
        );
        bad("Since=2025-01-01T00:00:00Z", "Until");
        bad("GroupBy=month", "GroupBy");
        bad("GroupBy=tag:", "GroupBy");
        bad("AccountId=../x", "AccountId");
        bad(&format!("AccountId={}", "a".repeat(65)), "AccountId");
    }
}
