//! The `/etc` files a group's containers see: `hosts` (the group's name and address, its
//! HostAliases), `hostname`, and `resolv.conf` from DnsPolicy/DnsConfig and the host's
//! resolver.

use std::fs;
use std::io;
use std::path::Path;

use berth_core::{DnsConfig, HostAlias};

use crate::files::GroupDirs;

/// Writes `hosts`, `hostname` and `resolv.conf` for the group's containers.
pub fn write_etc(
    dirs: &GroupDirs,
    hostname: &str,
    ip: Option<&str>,
    dns: Option<&DnsConfig>,
    policy: berth_core::DnsPolicy,
    aliases: &[HostAlias],
) -> io::Result<()> {
    let etc = dirs.etc();
    fs::create_dir_all(&etc)?;
    let mut hosts =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if let Some(ip) = ip {
        hosts.push_str(&format!("{ip}\t{hostname}\n"));
    }
    hosts.push_str(&berth_core::dns::hosts_lines(aliases));
    write_etc_file(&etc.join("hosts"), hosts.as_bytes())?;
    write_etc_file(&etc.join("hostname"), format!("{hostname}\n").as_bytes())?;
    let host = container_resolv_conf(&host_resolv_conf());
    let resolv = berth_core::dns::group_resolv_conf(policy, dns, &host);
    write_etc_file(&etc.join("resolv.conf"), resolv.as_bytes())?;
    Ok(())
}

/// The host's resolver configuration; when every name server of `/etc/resolv.conf` is a
/// loopback one (a local stub such as systemd-resolved's 127.0.0.53, which a container in its
/// own network namespace cannot reach), the stub's upstream file, as container engines do.
fn host_resolv_conf() -> String {
    let main = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let reachable = |text: &str| {
        text.lines().any(|l| {
            let mut p = l.split_whitespace();
            p.next() == Some("nameserver")
                && p.next()
                    .is_some_and(|a| !(a.starts_with("127.") || a == "::1"))
        })
    };
    if !reachable(&main) {
        if let Ok(upstream) = fs::read_to_string("/run/systemd/resolve/resolv.conf") {
            if reachable(&upstream) {
                return upstream;
            }
        }
    }
    main
}

/// Writes an empty file (a spare's, which no container uses yet) in place, allocating no
/// inode; replaces any other by a rename, so a running container keeps the file it has.
fn write_etc_file(path: &Path, data: &[u8]) -> io::Result<()> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() == 0 => fs::write(path, data),
        _ => write_atomic(path, data),
    }
}

/// The host's resolver configuration without loopback name servers, which a container in
/// its own network namespace cannot reach.
pub fn container_resolv_conf(host: &str) -> String {
    host.lines()
        .filter(|l| {
            let mut parts = l.split_whitespace();
            !(parts.next() == Some("nameserver")
                && parts
                    .next()
                    .is_some_and(|a| a.starts_with("127.") || a == "::1"))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data)?;
    fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::NodeDirs;

    #[test]
    fn resolv_conf_drops_loopback_servers() {
        let host = "search example.org\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\noptions edns0\n";
        assert_eq!(
            container_resolv_conf(host),
            "search example.org\nnameserver 10.0.0.2\noptions edns0\n"
        );
    }

    #[test]
    fn etc_files_are_written() {
        let dir = std::env::temp_dir().join(format!("berth-node-etc-{}", std::process::id()));
        let dirs = NodeDirs::new(&dir).group("g1");
        write_etc(
            &dirs,
            "web",
            Some("10.1.2.3"),
            None,
            berth_core::DnsPolicy::Default,
            &[],
        )
        .unwrap();
        assert!(
            dirs.etc().starts_with(dir.join("rw")),
            "/etc files belong on disk"
        );
        let hosts = fs::read_to_string(dirs.etc().join("hosts")).unwrap();
        assert!(hosts.contains("10.1.2.3\tweb"));
        assert_eq!(
            fs::read_to_string(dirs.etc().join("hostname")).unwrap(),
            "web\n"
        );
        dirs.remove_all().unwrap();
        assert!(NodeDirs::new(&dir).ids().is_empty());
        fs::remove_dir_all(dir).unwrap();
    }
}
