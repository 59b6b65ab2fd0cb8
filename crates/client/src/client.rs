//! The HTTP client: builds `POST /?<query>` requests with the headers the official SDK sends,
//! signs them with ACS3-HMAC-SHA256 and decodes success and error bodies.

use std::time::Duration;

use berth_eci::canon::encode_query;
use berth_eci::response::{
    CreateContainerGroupResponse, DescribeContainerGroupEventsResponse,
    DescribeContainerGroupStatusResponse, DescribeContainerGroupsResponse,
    DescribeContainerLogResponse, DescribeMultiContainerGroupMetricResponse,
    DescribeRegionsResponse, DescribeUsageResponse, ExecContainerCommandResponse,
    RequestIdResponse,
};
use berth_eci::sign::{content_sha256, sign_acs3};
use berth_eci::API_VERSION;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use crate::credentials::Credentials;
use crate::flatten::{json_list, CreateParams, DescribeParams, ExecParams, LogParams, UsageParams};

/// The `user-agent` berth's client sends (and signs).
pub const USER_AGENT: &str = concat!("berth-client/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("endpoint {0:?} is not host:port or http(s)://host:port")]
    Endpoint(String),
    #[error("the CA certificates {what} cannot be used")]
    Ca {
        what: String,
        #[source]
        source: Option<reqwest::Error>,
    },
    #[error("{action} to {url} failed")]
    Transport {
        action: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server refused the request with an ECI error body.
    #[error("{code}: {message} (HTTP {status}, RequestId {request_id})")]
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: String,
    },
    #[error("{action} answered HTTP {status} with a body that is not an ECI response: {body}")]
    Unexpected {
        action: String,
        status: u16,
        body: String,
    },
    #[error("the response to {action} cannot be decoded")]
    Decode {
        action: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A signed request, ready to send (or to inspect).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedRequest {
    pub method: &'static str,
    /// `scheme://host:port/?query`.
    pub url: String,
    /// The encoded query, without `?`.
    pub query: String,
    /// Every header to send, `Authorization` last.
    pub headers: Vec<(String, String)>,
}

/// An ECI client for one endpoint and AccessKey.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    scheme: &'static str,
    host: String,
    access_key_id: String,
    secret: String,
    region_id: Option<String>,
    user_agent: String,
    extra_headers: Vec<(String, String)>,
}

/// Splits `http://host:port`, `https://host:port` or `host:port` (a path is ignored).
fn parse_endpoint(endpoint: &str) -> Result<(&'static str, String), ClientError> {
    let e = endpoint.trim();
    let (scheme, rest) = if let Some(r) = e.strip_prefix("http://") {
        ("http", r)
    } else if let Some(r) = e.strip_prefix("https://") {
        ("https", r)
    } else {
        ("http", e)
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains('@') || !host.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ClientError::Endpoint(endpoint.to_string()));
    }
    Ok((scheme, host.to_string()))
}

/// The HTTP client of the calls; with `ca`, an HTTPS server is trusted only if its
/// certificate chains to one of those certificates (else the system's roots are used).
fn http_client(
    endpoint: &str,
    ca: Option<Vec<reqwest::Certificate>>,
) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120));
    if let Some(certs) = ca {
        builder = builder.tls_certs_only(certs);
    }
    builder.build().map_err(|source| ClientError::Transport {
        action: "building the HTTP client".into(),
        url: endpoint.to_string(),
        source,
    })
}

impl Client {
    pub fn new(endpoint: &str, access_key_id: &str, secret: &str) -> Result<Self, ClientError> {
        let (scheme, host) = parse_endpoint(endpoint)?;
        let http = http_client(endpoint, None)?;
        Ok(Self {
            http,
            scheme,
            host,
            access_key_id: access_key_id.to_string(),
            secret: secret.to_string(),
            region_id: None,
            user_agent: USER_AGENT.to_string(),
            extra_headers: Vec::new(),
        })
    }

    pub fn from_credentials(endpoint: &str, c: &Credentials) -> Result<Self, ClientError> {
        Self::new(endpoint, &c.access_key_id, &c.access_key_secret)
    }

    /// Trusts, for HTTPS, only the CA certificates in `pem` (one or more PEM `CERTIFICATE`
    /// blocks; `what` names them in errors), instead of the system's roots.
    pub fn with_ca_pem(mut self, pem: &[u8], what: &str) -> Result<Self, ClientError> {
        let certs =
            reqwest::Certificate::from_pem_bundle(pem).map_err(|source| ClientError::Ca {
                what: what.to_string(),
                source: Some(source),
            })?;
        if certs.is_empty() {
            return Err(ClientError::Ca {
                what: what.to_string(),
                source: None,
            });
        }
        let endpoint = format!("{}://{}", self.scheme, self.host);
        self.http = http_client(&endpoint, Some(certs))?;
        Ok(self)
    }

    /// The HTTP client the calls go through (with the trusted CA certificates), for the
    /// URLs the server hands out, such as a log stream's.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `RegionId` with every call that does not carry one.
    pub fn with_region(mut self, region_id: &str) -> Self {
        self.region_id = Some(region_id.to_string());
        self
    }

    /// Replaces the `user-agent` sent (and signed).
    pub fn with_user_agent(mut self, user_agent: &str) -> Self {
        self.user_agent = user_agent.to_string();
        self
    }

    /// Adds a header to every call; it is signed like the others.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.extra_headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// The `host` header sent and signed (`127.0.0.1:8080`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Builds and signs a call at time `now` with `nonce`.
    pub fn prepare(
        &self,
        action: &str,
        params: &[(String, String)],
        now: DateTime<Utc>,
        nonce: &str,
    ) -> PreparedRequest {
        let mut query = params.to_vec();
        if let Some(r) = &self.region_id {
            if !query.iter().any(|(k, _)| k == "RegionId") {
                query.push(("RegionId".into(), r.clone()));
            }
        }
        let h = |k: &str, v: &str| (k.to_string(), v.to_string());
        let mut headers = vec![
            h("host", &self.host),
            h("x-acs-version", API_VERSION),
            h("x-acs-action", action),
            h("user-agent", &self.user_agent),
            h("x-acs-date", &now.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            h("x-acs-signature-nonce", nonce),
            h("accept", "application/json"),
            h("x-acs-content-sha256", &content_sha256(b"")),
        ];
        headers.extend(self.extra_headers.iter().cloned());
        let auth = sign_acs3(
            "POST",
            "/",
            &query,
            &headers,
            b"",
            &self.access_key_id,
            &self.secret,
        );
        headers.push(h("Authorization", &auth));
        let encoded = encode_query(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        PreparedRequest {
            method: "POST",
            url: format!("{}://{}/?{}", self.scheme, self.host, encoded),
            query: encoded,
            headers,
        }
    }

    /// Calls `action` and returns the JSON body of a success.
    pub async fn call(
        &self,
        action: &str,
        params: &[(String, String)],
    ) -> Result<serde_json::Value, ClientError> {
        let nonce = hex_nonce(rand::random());
        let req = self.prepare(action, params, Utc::now(), &nonce);
        let mut builder = self.http.post(&req.url).body(Vec::new());
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let transport = |source| ClientError::Transport {
            action: action.to_string(),
            url: req.url.clone(),
            source,
        };
        let resp = builder.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(transport)?;
        decode_body(action, status, &body)
    }

    /// Calls `action` and decodes the success body as `T`.
    pub async fn call_as<T: DeserializeOwned>(
        &self,
        action: &str,
        params: &[(String, String)],
    ) -> Result<T, ClientError> {
        let v = self.call(action, params).await?;
        serde_json::from_value(v).map_err(|source| ClientError::Decode {
            action: action.to_string(),
            source,
        })
    }

    pub async fn create_container_group(
        &self,
        p: &CreateParams,
    ) -> Result<CreateContainerGroupResponse, ClientError> {
        self.call_as("CreateContainerGroup", &p.to_query()).await
    }

    pub async fn describe_container_groups(
        &self,
        p: &DescribeParams,
    ) -> Result<DescribeContainerGroupsResponse, ClientError> {
        self.call_as("DescribeContainerGroups", &p.to_query()).await
    }

    /// Every group matching `p`, following `NextToken` (at most 500 pages).
    pub async fn list_container_groups(
        &self,
        p: &DescribeParams,
    ) -> Result<Vec<berth_eci::response::ContainerGroup>, ClientError> {
        let mut p = p.clone();
        let mut out = Vec::new();
        for _ in 0..500 {
            let page = self.describe_container_groups(&p).await?;
            out.extend(page.container_groups);
            if page.next_token.is_empty() {
                break;
            }
            p.next_token = Some(page.next_token);
        }
        Ok(out)
    }

    pub async fn describe_container_group_status(
        &self,
        ids: &[String],
    ) -> Result<DescribeContainerGroupStatusResponse, ClientError> {
        self.call_as("DescribeContainerGroupStatus", &ids_param(ids))
            .await
    }

    pub async fn describe_container_group_events(
        &self,
        ids: &[String],
    ) -> Result<DescribeContainerGroupEventsResponse, ClientError> {
        self.call_as("DescribeContainerGroupEvents", &ids_param(ids))
            .await
    }

    pub async fn delete_container_group(&self, id: &str) -> Result<RequestIdResponse, ClientError> {
        self.call_as("DeleteContainerGroup", &group_id_param(id))
            .await
    }

    /// DeleteContainerGroup with berth's `GracePeriodSeconds`: the containers get `grace`
    /// seconds between SIGTERM and SIGKILL instead of the group's own.
    pub async fn delete_container_group_within(
        &self,
        id: &str,
        grace: u64,
    ) -> Result<RequestIdResponse, ClientError> {
        let mut p = group_id_param(id);
        p.push(("GracePeriodSeconds".into(), grace.to_string()));
        self.call_as("DeleteContainerGroup", &p).await
    }

    /// UpdateContainerGroup of `volumes` alone (an `IncrementalUpdate`: the group's other
    /// volumes stay).
    pub async fn update_container_group_volumes(
        &self,
        id: &str,
        volumes: &[berth_core::Volume],
    ) -> Result<RequestIdResponse, ClientError> {
        let q = crate::flatten::volume_update_query(id, volumes);
        self.call_as("UpdateContainerGroup", &q).await
    }

    pub async fn restart_container_group(
        &self,
        id: &str,
    ) -> Result<RequestIdResponse, ClientError> {
        self.call_as("RestartContainerGroup", &group_id_param(id))
            .await
    }

    pub async fn describe_container_log(
        &self,
        p: &LogParams,
    ) -> Result<DescribeContainerLogResponse, ClientError> {
        self.call_as("DescribeContainerLog", &p.to_query()).await
    }

    /// DescribeContainerLog with berth's `Follow=true`: the one-time `StreamUrl` the log of
    /// `p` streams from (docs/API-EXTENSIONS.md); add `&follow=false` to read it once.
    pub async fn container_log_stream_url(&self, p: &LogParams) -> Result<String, ClientError> {
        const ACTION: &str = "DescribeContainerLog";
        let mut q = p.to_query();
        q.push(("Follow".into(), "true".into()));
        let v = self.call(ACTION, &q).await?;
        match v.get("StreamUrl").and_then(|u| u.as_str()) {
            Some(u) if !u.is_empty() => Ok(u.to_string()),
            _ => Err(ClientError::Unexpected {
                action: ACTION.into(),
                status: 200,
                body: "the answer carries no StreamUrl".into(),
            }),
        }
    }

    pub async fn exec_container_command(
        &self,
        p: &ExecParams,
    ) -> Result<ExecContainerCommandResponse, ClientError> {
        self.call_as("ExecContainerCommand", &p.to_query()).await
    }

    /// PortForward: the WebSocket URI of a connection to `port` on the group's loopback.
    pub async fn port_forward(&self, group_id: &str, port: u16) -> Result<String, ClientError> {
        let v = self
            .call(
                "PortForward",
                &[
                    ("ContainerGroupId".to_string(), group_id.to_string()),
                    ("Port".to_string(), port.to_string()),
                ],
            )
            .await?;
        Ok(v["WebSocketUri"].as_str().unwrap_or_default().to_string())
    }

    /// The latest metric record of each of `ids` (at most 20) that berth knows.
    pub async fn describe_multi_container_group_metric(
        &self,
        ids: &[String],
    ) -> Result<DescribeMultiContainerGroupMetricResponse, ClientError> {
        self.call_as("DescribeMultiContainerGroupMetric", &ids_param(ids))
            .await
    }

    pub async fn describe_regions(&self) -> Result<DescribeRegionsResponse, ClientError> {
        self.call_as("DescribeRegions", &[]).await
    }

    /// DescribeUsage: a bill (berth's own action, docs/API-EXTENSIONS.md).
    pub async fn describe_usage(
        &self,
        p: &UsageParams,
    ) -> Result<DescribeUsageResponse, ClientError> {
        self.call_as("DescribeUsage", &p.to_query()).await
    }
}

fn ids_param(ids: &[String]) -> Vec<(String, String)> {
    if ids.is_empty() {
        return Vec::new();
    }
    vec![("ContainerGroupIds".into(), json_list(ids))]
}

fn group_id_param(id: &str) -> Vec<(String, String)> {
    vec![("ContainerGroupId".into(), id.to_string())]
}

fn hex_nonce(bytes: [u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn field<'a>(v: &'a serde_json::Value, upper: &str, lower: &str) -> Option<&'a str> {
    v.get(upper)
        .or_else(|| v.get(lower))
        .and_then(|x| x.as_str())
}

/// A success body as JSON, or the error it carries (status 400–599, as the SDK reads them).
pub(crate) fn decode_body(
    action: &str,
    status: u16,
    body: &[u8],
) -> Result<serde_json::Value, ClientError> {
    let unexpected = || ClientError::Unexpected {
        action: action.to_string(),
        status,
        body: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
    };
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if (400..600).contains(&status) {
        let v = json.ok_or_else(unexpected)?;
        let code = field(&v, "Code", "code").ok_or_else(unexpected)?;
        return Err(ClientError::Api {
            status,
            code: code.to_string(),
            message: field(&v, "Message", "message")
                .unwrap_or_default()
                .to_string(),
            request_id: field(&v, "RequestId", "requestId")
                .unwrap_or_default()
                .to_string(),
        });
    }
    match json {
        Some(v) if v.is_object() && (200..300).contains(&status) => Ok(v),
        _ => Err(unexpected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("127.0.0.1:8080").unwrap(),
            ("http", "127.0.0.1:8080".into())
        );
        assert_eq!(
            parse_endpoint("http://h:1/").unwrap(),
            ("http", "h:1".into())
        );
        assert_eq!(
            parse_endpoint("https://eci.example").unwrap(),
            ("https", "eci.example".into())
        );
        assert!(parse_endpoint("").is_err());
        assert!(parse_endpoint("http://").is_err());
        assert!(parse_endpoint("a b").is_err());
    }

    #[test]
    fn bodies() {
        let ok = decode_body("X", 200, br#"{"RequestId":"r"}"#).unwrap();
        assert_eq!(ok["RequestId"], "r");
        match decode_body(
            "X",
            404,
            br#"{"RequestId":"r","Code":"InvalidApi.NotFound","Message":"m: X"}"#,
        ) {
            Err(ClientError::Api {
                status,
                code,
                message,
                request_id,
            }) => {
                assert_eq!(
                    (status, code.as_str(), message.as_str(), request_id.as_str()),
                    (404, "InvalidApi.NotFound", "m: X", "r")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_body("X", 500, b"oops"),
            Err(ClientError::Unexpected { .. })
        ));
        assert!(matches!(
            decode_body("X", 200, b""),
            Err(ClientError::Unexpected { .. })
        ));
        assert_eq!(hex_nonce([0xab; 16]).len(), 32);
    }
}
