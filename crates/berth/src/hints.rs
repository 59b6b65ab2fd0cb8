//! The advice printed after an error of a client command: what to do next, from what went
//! wrong (the server unreachable, its certificate not trusted, the key unknown, refused or
//! lacking access) and from where the endpoint and key came from.

use berth_client::ClientError;

use crate::settings::{ClientArgs, Source, DEFAULT_ENDPOINT};

/// The error's text, with its sources, for matching.
fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut s = e.source();
    while let Some(x) = s {
        out.push_str(": ");
        out.push_str(&x.to_string());
        s = x.source();
    }
    out
}

/// Where the endpoint can be set, for people.
fn where_to_set(a: &ClientArgs) -> String {
    let file = a
        .config_file
        .as_deref()
        .map_or("~/.config/berth/config.toml".into(), |p| {
            p.display().to_string()
        });
    format!(
        "give --endpoint URL, set BERTH_ENDPOINT, or set `endpoint` in a profile of {file} \
         (chosen with --profile NAME or BERTH_PROFILE)"
    )
}

/// Advice for `e`, if there is any to give.
pub(crate) fn hint(e: &anyhow::Error, a: Option<&ClientArgs>) -> Option<String> {
    let ce = e.chain().find_map(|c| c.downcast_ref::<ClientError>())?;
    let a = a?;
    match ce {
        ClientError::Transport { source, .. } => {
            let text = chain_text(source).to_lowercase();
            if text.contains("certificate") || text.contains("unknownissuer") {
                return Some(format!(
                    "the server at {} has a certificate this client does not trust: give \
                     --ca-file FILE (BERTH_CA_FILE, or `ca_file` in the profile) with the CA \
                     that signed it",
                    a.endpoint
                ));
            }
            if source.is_connect() {
                return Some(match &a.endpoint_source {
                    Source::Default => format!(
                        "no endpoint is configured, so berth tried {DEFAULT_ENDPOINT}: is \
                         `berth serve` running there? Otherwise {}",
                        where_to_set(a)
                    ),
                    Source::Profile(p) => format!(
                        "is `berth serve` running at {} (the endpoint of profile {p})?",
                        a.endpoint
                    ),
                    Source::Flag => format!(
                        "is `berth serve` running at {} (--endpoint or BERTH_ENDPOINT)?",
                        a.endpoint
                    ),
                });
            }
            if source.is_timeout() {
                return Some(format!(
                    "the server at {} did not answer in time: is it overloaded, or is this \
                     the right address?",
                    a.endpoint
                ));
            }
            None
        }
        ClientError::Api { status, code, .. } => {
            let key = format!("access key {} ({})", a.access_key_id(), a.key_source);
            match code.as_str() {
                "InvalidAccessKeyId.NotFound" => Some(format!(
                    "the server at {} does not know the {key}: use a key of that server \
                     (`berth admin key create` makes one), or another --profile",
                    a.endpoint
                )),
                "SignatureDoesNotMatch" => Some(format!(
                    "the secret does not belong to the {key}: check the credentials"
                )),
                "InvalidAccessKeyId.Inactive" | "Forbidden.AccessKeyDisabled" => Some(format!(
                    "the {key} or its account is disabled: the operator can enable it \
                     (`berth admin key enable` / `berth admin account enable`)"
                )),
                "Throttling.User" => {
                    Some("too many requests of this account: wait a moment and retry".into())
                }
                "InvalidProtocol.NeedSsl" => Some(format!(
                    "the server speaks HTTPS: use https://{} as the endpoint",
                    a.endpoint
                        .trim_start_matches("http://")
                        .trim_end_matches('/')
                )),
                _ if *status == 403 => Some(format!(
                    "the {key} lacks access to this; an operator's key or the operator \
                     (`berth admin`) can grant it, or use another --profile"
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port nothing listens on: bound, then closed.
    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    async fn refused(a: &ClientArgs) -> anyhow::Error {
        let c = crate::settings::client(a).unwrap();
        anyhow::Error::from(c.call("DescribeRegions", &[]).await.unwrap_err())
    }

    #[tokio::test]
    async fn a_refused_connection_says_where_the_endpoint_came_from() {
        let url = format!("http://127.0.0.1:{}", closed_port());
        let a = ClientArgs::for_tests(&url, Source::Default);
        let h = hint(&refused(&a).await, Some(&a)).unwrap();
        assert!(h.contains("no endpoint is configured"), "{h}");
        assert!(h.contains("--endpoint URL, set BERTH_ENDPOINT"), "{h}");
        assert!(h.contains("/home/u/.config/berth/config.toml"), "{h}");
        let a = ClientArgs::for_tests(&url, Source::Profile("prod".into()));
        let h = hint(&refused(&a).await, Some(&a)).unwrap();
        assert!(
            h.contains(&format!("running at {url} (the endpoint of profile prod)")),
            "{h}"
        );
    }

    #[test]
    fn refusals_of_the_key_say_which_key() {
        let a = ClientArgs::for_tests("http://h:1", Source::Flag);
        let api = |status, code: &str| {
            anyhow::Error::from(ClientError::Api {
                status,
                code: code.into(),
                message: "m: x".into(),
                request_id: "r".into(),
            })
        };
        let h = hint(&api(403, "Forbidden.Operator"), Some(&a)).unwrap();
        assert!(h.contains("access key LTAItest (--credentials"), "{h}");
        assert!(h.contains("lacks access"), "{h}");
        let h = hint(&api(404, "InvalidAccessKeyId.NotFound"), Some(&a)).unwrap();
        assert!(h.contains("does not know the access key LTAItest"), "{h}");
        assert_eq!(hint(&api(400, "MissingParameter"), Some(&a)), None);
        assert_eq!(hint(&anyhow::anyhow!("other"), Some(&a)), None);
    }
}
