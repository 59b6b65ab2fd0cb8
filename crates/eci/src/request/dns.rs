//! `DnsConfig.*` and `HostAliase.N.*` of CreateContainerGroup. Every value ends up in a line of
//! a container's `/etc/resolv.conf` or `/etc/hosts`, so each is checked to be what it claims
//! (an address, a host name, an option word) — nothing with a space or a line break passes.

use std::net::IpAddr;

use berth_core::dns::{
    DnsConfig, DnsOption, HostAlias, MAX_ALIAS_HOSTNAMES, MAX_HOST_ALIASES, MAX_NAME_SERVERS,
    MAX_OPTIONS, MAX_SEARCHES,
};

use super::validate;
use crate::{ApiError, Params};

/// `DnsPolicy`: `Default` (the host's resolvers, as without it) or `None` (only the group's
/// `DnsConfig`). ECI's cluster values name a cluster DNS berth does not have.
pub fn dns_policy(p: &Params) -> Result<berth_core::DnsPolicy, ApiError> {
    match p.string("DnsPolicy").as_deref() {
        None | Some("Default") => Ok(berth_core::DnsPolicy::Default),
        Some("None") => Ok(berth_core::DnsPolicy::None),
        Some(other) => Err(ApiError::invalid_parameter(
            "DnsPolicy",
            format!(
                "`{}` is not supported by berth: it has no cluster DNS; use Default or None",
                other.chars().take(64).collect::<String>()
            ),
        )),
    }
}

/// The group's `DnsConfig`; `None` when it sends none.
pub fn dns_config(p: &Params) -> Result<Option<DnsConfig>, ApiError> {
    let name_servers = p.string_list("DnsConfig.NameServer")?;
    if name_servers.len() > MAX_NAME_SERVERS {
        return Err(ApiError::value_exceeded(
            "DnsConfig.NameServer",
            format!("allows at most {MAX_NAME_SERVERS} name servers"),
        ));
    }
    for (i, s) in name_servers.iter().enumerate() {
        address(&format!("DnsConfig.NameServer.{}", i + 1), s)?;
    }
    let searches = p.string_list("DnsConfig.Search")?;
    if searches.len() > MAX_SEARCHES {
        return Err(ApiError::value_exceeded(
            "DnsConfig.Search",
            format!("allows at most {MAX_SEARCHES} search domains"),
        ));
    }
    for (i, d) in searches.iter().enumerate() {
        validate::host_name(&format!("DnsConfig.Search.{}", i + 1), d)?;
    }
    let idx = p.indexes("DnsConfig.Option")?;
    if idx.len() > MAX_OPTIONS {
        return Err(ApiError::value_exceeded(
            "DnsConfig.Option",
            format!("allows at most {MAX_OPTIONS} options"),
        ));
    }
    let mut options = Vec::new();
    for i in idx {
        let name_param = format!("DnsConfig.Option.{i}.Name");
        let name = p
            .string(&name_param)
            .ok_or_else(|| ApiError::missing_parameter(&name_param))?;
        word(&name_param, &name, false)?;
        let value_param = format!("DnsConfig.Option.{i}.Value");
        let value = p.string(&value_param).filter(|v| !v.is_empty());
        if let Some(v) = &value {
            word(&value_param, v, true)?;
        }
        options.push(DnsOption { name, value });
    }
    if name_servers.is_empty() && searches.is_empty() && options.is_empty() {
        return Ok(None);
    }
    Ok(Some(DnsConfig {
        name_servers,
        searches,
        options,
    }))
}

/// The group's `HostAliase.N`.
pub fn host_aliases(p: &Params) -> Result<Vec<HostAlias>, ApiError> {
    let idx = p.indexes("HostAliase")?;
    if idx.len() > MAX_HOST_ALIASES {
        return Err(ApiError::value_exceeded(
            "HostAliase",
            format!("allows at most {MAX_HOST_ALIASES} aliases"),
        ));
    }
    let mut out = Vec::new();
    for i in idx {
        let ip_param = format!("HostAliase.{i}.Ip");
        let ip = p
            .string(&ip_param)
            .ok_or_else(|| ApiError::missing_parameter(&ip_param))?;
        address(&ip_param, &ip)?;
        let names_param = format!("HostAliase.{i}.Hostname");
        let hostnames = p.string_list(&names_param)?;
        if hostnames.is_empty() {
            return Err(ApiError::missing_parameter(&format!("{names_param}.1")));
        }
        if hostnames.len() > MAX_ALIAS_HOSTNAMES {
            return Err(ApiError::value_exceeded(
                &names_param,
                format!("allows at most {MAX_ALIAS_HOSTNAMES} host names"),
            ));
        }
        for (j, h) in hostnames.iter().enumerate() {
            validate::host_name(&format!("{names_param}.{}", j + 1), h)?;
        }
        out.push(HostAlias { ip, hostnames });
    }
    Ok(out)
}

fn address(param: &str, text: &str) -> Result<(), ApiError> {
    text.parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| ApiError::invalid_parameter(param, format!("is not an IP address: {text:?}")))
}

/// A resolver option's name (`ndots`, `edns0`, `single-request-reopen`) or value (`5`).
fn word(param: &str, text: &str, value: bool) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (value && b == b'.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(
            param,
            format!("is not a resolver option word: {text:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::parse(q, None).unwrap()
    }

    #[test]
    fn dns_settings_decode() {
        let p = params(
            "DnsConfig.NameServer.1=10.1.1.1&DnsConfig.NameServer.2=fd00::53&DnsConfig.Search.1=ns.svc.local\
             &DnsConfig.Option.1.Name=ndots&DnsConfig.Option.1.Value=5&DnsConfig.Option.2.Name=edns0\
             &HostAliase.1.Ip=10.0.0.9&HostAliase.1.Hostname.1=db&HostAliase.1.Hostname.2=db.local",
        );
        let d = dns_config(&p).unwrap().unwrap();
        assert_eq!(d.name_servers, ["10.1.1.1", "fd00::53"]);
        assert_eq!(d.searches, ["ns.svc.local"]);
        assert_eq!(d.options[0].value.as_deref(), Some("5"));
        assert_eq!(d.options[1].value, None);
        let a = host_aliases(&p).unwrap();
        assert_eq!(a[0].hostnames, ["db", "db.local"]);
        assert_eq!(dns_config(&params("RegionId=x")).unwrap(), None);
    }

    #[test]
    fn nothing_that_could_break_a_line_passes() {
        for q in [
            "DnsConfig.NameServer.1=10.1.1.1%0Anameserver%208.8.8.8",
            "DnsConfig.NameServer.1=dns.example",
            "DnsConfig.Search.1=a%20b",
            "DnsConfig.Search.1=a%0Ab",
            "DnsConfig.Option.1.Name=nd%20ots",
            "DnsConfig.Option.1.Name=ndots&DnsConfig.Option.1.Value=5%0Ax",
            "DnsConfig.Option.1.Value=5",
            "DnsConfig.NameServer.1=1.1.1.1&DnsConfig.NameServer.2=1.1.1.2&DnsConfig.NameServer.3=1.1.1.3&DnsConfig.NameServer.4=1.1.1.4",
        ] {
            let e = dns_config(&params(q)).expect_err(q);
            assert!(e.message.contains("DnsConfig"), "{q}: {}", e.message);
        }
        for q in [
            "HostAliase.1.Ip=10.0.0.1",
            "HostAliase.1.Ip=10.0.0.1%0A1.2.3.4&HostAliase.1.Hostname.1=x",
            "HostAliase.1.Ip=10.0.0.1&HostAliase.1.Hostname.1=a%09b",
            "HostAliase.1.Hostname.1=x",
        ] {
            let e = host_aliases(&params(q)).expect_err(q);
            assert!(e.message.contains("HostAliase"), "{q}: {}", e.message);
        }
    }
}
