//! Network counters of every interface in a network namespace: a short-lived thread joins the
//! namespace (`setns`, which affects only that thread) and reads `/proc/thread-self/net/dev`.

use std::fs::File;
use std::path::Path;

use nix::sched::{setns, CloneFlags};
use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;

/// The counters of one interface, as `/proc/net/dev` shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStats {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Reads the counters of every interface (loopback included) of the network namespace at
/// `netns` (a bind-mounted namespace file or `/proc/<pid>/ns/net`). Blocking, well under a
/// millisecond; needs CAP_SYS_ADMIN.
pub fn net_stats(netns: &Path) -> Result<Vec<InterfaceStats>, RuntimeError> {
    let ns = File::open(netns).map_err(|e| RuntimeError::io("open", netns, e))?;
    let text = std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || {
            setns(&ns, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            std::fs::read_to_string("/proc/thread-self/net/dev")
        })
        .map_err(|e| RuntimeError::io("start a thread to enter", netns, e))?
        .join()
        .map_err(|_| {
            RuntimeError::io(
                "read the interfaces of",
                netns,
                std::io::Error::other("the reading thread panicked"),
            )
        })?
        .map_err(|e| RuntimeError::io("read the interfaces of", netns, e))?;
    Ok(parse_net_dev(&text))
}

/// Parses `/proc/net/dev`; lines that do not fit are skipped.
fn parse_net_dev(text: &str) -> Vec<InterfaceStats> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let v: Vec<u64> = rest
                .split_whitespace()
                .map(|f| f.parse().ok())
                .collect::<Option<_>>()?;
            if v.len() < 16 {
                return None;
            }
            Some(InterfaceStats {
                name: name.trim().to_string(),
                rx_bytes: v[0],
                rx_packets: v[1],
                rx_errors: v[2],
                rx_dropped: v[3],
                tx_bytes: v[8],
                tx_packets: v[9],
                tx_errors: v[10],
                tx_dropped: v[11],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_dev() {
        let text = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0: 9000 30 1 2 0 0 0 0 7000 20 3 4 0 0 0 0
  bad: 1 2 3
";
        let s = parse_net_dev(text);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].name.as_str(), s[0].rx_bytes, s[0].tx_packets),
            ("lo", 100, 2)
        );
        assert_eq!(
            s[1],
            InterfaceStats {
                name: "eth0".into(),
                rx_bytes: 9000,
                rx_packets: 30,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 7000,
                tx_packets: 20,
                tx_errors: 3,
                tx_dropped: 4,
            }
        );
    }

    #[test]
    fn missing_namespace_is_an_error() {
        assert!(net_stats(Path::new("/nonexistent/netns")).is_err());
    }
}
