//! Requests of the observe operations: ExecContainerCommand, DescribeContainerGroupMetric and
//! DescribeMultiContainerGroupMetric (ECI_API.md §7.2, limits in §6).

use chrono::{DateTime, Duration, Utc};

use crate::error::ApiError;
use crate::params::Params;

use super::MAX_IDS;

/// Most items of `ExecContainerCommand.Command`.
pub const MAX_EXEC_ARGS: usize = 20;
/// Most characters of one item of `ExecContainerCommand.Command`.
pub const MAX_EXEC_ARG_LEN: usize = 256;
/// The periods DescribeContainerGroupMetric accepts, in seconds.
pub const METRIC_PERIODS: [u32; 4] = [15, 30, 60, 600];
pub const DEFAULT_METRIC_PERIOD: u32 = 60;
/// Most records DescribeContainerGroupMetric returns.
pub const MAX_METRIC_RECORDS: usize = 50;
/// The range covered when none is given.
pub const DEFAULT_METRIC_RANGE_SECS: i64 = 300;

/// ExecContainerCommand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    pub region_id: Option<String>,
    pub container_group_id: String,
    pub container_name: String,
    /// The command and its arguments.
    pub command: Vec<String>,
    pub tty: bool,
    /// Whether the process gets a stdin (default true).
    pub stdin: bool,
    /// Run to the end and return the output in the response.
    pub sync: bool,
}

impl ExecRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        let raw = p.required("Command")?;
        let command = parse_command(&raw)?;
        Ok(Self {
            region_id: p.string("RegionId"),
            container_group_id: p.required("ContainerGroupId")?,
            container_name: p.required("ContainerName")?,
            command,
            tty: p.bool("TTY")?.unwrap_or(false),
            stdin: p.bool("Stdin")?.unwrap_or(true),
            sync: p.bool("Sync")?.unwrap_or(false),
        })
    }
}

/// PortForward (berth's extension): a connection to a port of the group's own loopback, as
/// `kubectl port-forward` makes one into a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortForwardRequest {
    pub region_id: Option<String>,
    pub container_group_id: String,
    /// The TCP port, on 127.0.0.1 inside the group's network namespace.
    pub port: u16,
}

impl PortForwardRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        let port = p
            .int::<u32>("Port")?
            .ok_or_else(|| ApiError::missing_parameter("Port"))?;
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                ApiError::invalid_parameter("Port", format!("must be 1 to 65535, got {port}"))
            })?;
        Ok(Self {
            region_id: p.string("RegionId"),
            container_group_id: p.required("ContainerGroupId")?,
            port,
        })
    }
}

/// `Command`: a JSON array of strings (`["/bin/sh","-c","ls"]`); anything else is split at
/// white space.
fn parse_command(raw: &str) -> Result<Vec<String>, ApiError> {
    let raw = raw.trim();
    let items: Vec<String> = if raw.starts_with('[') {
        serde_json::from_str(raw).map_err(|_| {
            ApiError::invalid_parameter(
                "Command",
                "must be a JSON array of strings, such as [\"/bin/sh\",\"-c\",\"ls\"]",
            )
        })?
    } else {
        raw.split_whitespace().map(str::to_string).collect()
    };
    if items.is_empty() || items[0].is_empty() {
        return Err(ApiError::invalid_parameter("Command", "names no command"));
    }
    if items.len() > MAX_EXEC_ARGS {
        return Err(ApiError::value_exceeded(
            "Command",
            format!(
                "holds {} items, at most {MAX_EXEC_ARGS} are allowed",
                items.len()
            ),
        ));
    }
    if items.iter().any(|a| a.chars().count() > MAX_EXEC_ARG_LEN) {
        return Err(ApiError::length_exceeded("Command", MAX_EXEC_ARG_LEN));
    }
    if items.iter().any(|a| a.contains('\0')) {
        return Err(ApiError::invalid_parameter(
            "Command",
            "holds a NUL character",
        ));
    }
    Ok(items)
}

/// DescribeContainerGroupMetric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetricRequest {
    pub region_id: Option<String>,
    pub container_group_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// One of [`METRIC_PERIODS`].
    pub period: u32,
}

impl GroupMetricRequest {
    /// Decodes with `now` as the default end of the range.
    pub fn decode_at(p: &Params, now: DateTime<Utc>) -> Result<Self, ApiError> {
        let period = match p.string("Period") {
            None => DEFAULT_METRIC_PERIOD,
            Some(s) => s
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| METRIC_PERIODS.contains(n))
                .ok_or_else(|| {
                    ApiError::invalid_parameter("Period", "must be one of 15, 30, 60 and 600")
                })?,
        };
        let end = time(p, "EndTime")?.unwrap_or(now);
        let start =
            time(p, "StartTime")?.unwrap_or(end - Duration::seconds(DEFAULT_METRIC_RANGE_SECS));
        if start > end {
            return Err(ApiError::invalid_parameter(
                "StartTime",
                "must not be after EndTime",
            ));
        }
        Ok(Self {
            region_id: p.string("RegionId"),
            container_group_id: p.required("ContainerGroupId")?,
            start,
            end,
            period,
        })
    }

    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        Self::decode_at(p, Utc::now())
    }
}

fn time(p: &Params, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    p.string(name)
        .map(|s| {
            DateTime::parse_from_rfc3339(s.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::invalid_parameter(
                        name,
                        "must be an RFC 3339 time such as 2024-01-01T00:00:00Z",
                    )
                })
        })
        .transpose()
}

/// DescribeMultiContainerGroupMetric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiMetricRequest {
    pub region_id: Option<String>,
    pub ids: Vec<String>,
    /// `summary` (the default: group totals) or `detail`; berth returns both in any case.
    pub metric_type: Option<String>,
}

impl MultiMetricRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        let ids = p
            .json_list("ContainerGroupIds", MAX_IDS)?
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::missing_parameter("ContainerGroupIds"))?;
        Ok(Self {
            region_id: p.string("RegionId"),
            ids,
            metric_type: p.string("MetricType"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Params {
        Params::parse(q, None).unwrap()
    }

    #[test]
    fn exec_command_lists() {
        let r = ExecRequest::decode(&p(
            "ContainerGroupId=eci-1&ContainerName=c&Command=%5B%22sh%22%2C%22-c%22%2C%22echo%20a%2Cb%22%5D&TTY=true&Sync=false",
        ))
        .unwrap();
        assert_eq!(r.command, ["sh", "-c", "echo a,b"]);
        assert!(r.tty && r.stdin && !r.sync);
        let r =
            ExecRequest::decode(&p("ContainerGroupId=g&ContainerName=c&Command=ls%20-l")).unwrap();
        assert_eq!(r.command, ["ls", "-l"]);
        let too_many = serde_json::to_string(&vec!["a"; 21]).unwrap();
        let q = format!(
            "ContainerGroupId=g&ContainerName=c&Command={}",
            percent(&too_many)
        );
        assert_eq!(ExecRequest::decode(&p(&q)).unwrap_err().status, 400);
        let long = serde_json::to_string(&vec!["a".repeat(257)]).unwrap();
        let q = format!(
            "ContainerGroupId=g&ContainerName=c&Command={}",
            percent(&long)
        );
        assert!(ExecRequest::decode(&p(&q)).is_err());
        assert!(ExecRequest::decode(&p("ContainerGroupId=g&ContainerName=c")).is_err());
        assert!(
            ExecRequest::decode(&p("ContainerGroupId=g&ContainerName=c&Command=%5B%5D")).is_err()
        );
    }

    fn percent(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    #[test]
    fn metric_ranges_and_periods() {
        let now: DateTime<Utc> = "2024-01-01T01:00:00Z".parse().unwrap();
        let r = GroupMetricRequest::decode_at(&p("ContainerGroupId=g"), now).unwrap();
        assert_eq!(
            (r.period, r.end, (r.end - r.start).num_seconds()),
            (60, now, 300)
        );
        let r = GroupMetricRequest::decode_at(
            &p("ContainerGroupId=g&Period=15&StartTime=2024-01-01T00:00:00Z&EndTime=2024-01-01T00:30:00Z"),
            now,
        )
        .unwrap();
        assert_eq!((r.period, (r.end - r.start).num_seconds()), (15, 1800));
        assert!(GroupMetricRequest::decode_at(&p("ContainerGroupId=g&Period=7"), now).is_err());
        assert!(GroupMetricRequest::decode_at(
            &p("ContainerGroupId=g&StartTime=2024-01-01T02:00:00Z"),
            now
        )
        .is_err());
    }

    #[test]
    fn multi_metric_ids() {
        let r = MultiMetricRequest::decode(&p(
            "ContainerGroupIds=%5B%22eci-a%22%2C%22eci-b%22%5D&MetricType=summary",
        ))
        .unwrap();
        assert_eq!(r.ids, ["eci-a", "eci-b"]);
        assert!(MultiMetricRequest::decode(&p("RegionId=x")).is_err());
    }

    #[test]
    fn port_forward_takes_one_port() {
        let d = |q: &str| PortForwardRequest::decode(&p(q));
        let r = d("ContainerGroupId=eci-1&Port=8080").unwrap();
        assert_eq!((r.container_group_id.as_str(), r.port), ("eci-1", 8080));
        for bad in ["Port=0", "Port=65536", "Port=-1", "Port=http"] {
            let e = d(&format!("ContainerGroupId=eci-1&{bad}")).unwrap_err();
            assert_eq!(e.code, "InvalidParameter", "{bad}");
            assert!(e.message.contains("Port"), "{bad}: {}", e.message);
        }
        assert_eq!(
            d("ContainerGroupId=eci-1").unwrap_err().code,
            "MissingParameter"
        );
        assert_eq!(d("Port=80").unwrap_err().code, "MissingParameter");
    }
}
