//! Shared fixture for the root tests: a throw-away network with its own
//! bridge, subnet, state and namespace directories, plus host inspection helpers.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_net::{NetConfig, Network};

/// A test network; the bridge and the namespace directory mount go away on drop.
pub struct Fixture {
    pub net: std::sync::Arc<Network>,
    pub cfg: NetConfig,
    pub name: String,
    pub subnet_prefix: String,
    _dir: tempfile::TempDir,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn tag() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    (nanos ^ (std::process::id() << 8) ^ n.wrapping_mul(0x9e37_79b9)) & 0x00ff_ffff
}

/// Fails (never skips) when the test cannot do its job on this host.
pub fn require_host() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests need root: they create namespaces, veths and iptables rules"
    );
    for tool in ["ip", "nsenter", "iptables"] {
        let found = Command::new(tool).arg("--version").output().is_ok();
        assert!(
            found,
            "`{tool}` is needed by these tests but is not installed"
        );
    }
    for plugin in ["bridge", "static", "host-local"] {
        assert!(
            Path::new("/usr/lib/cni").join(plugin).is_file(),
            "CNI plugin {plugin} missing from /usr/lib/cni"
        );
    }
}

impl Fixture {
    /// A network over a random /24 in 10.200.0.0 to 10.250.255.0 (never berth's 10.213).
    pub fn new() -> Self {
        Self::with_prefix_len(24)
    }

    pub fn with_prefix_len(prefix_len: u8) -> Self {
        Self::build(prefix_len, 0)
    }

    /// A /24 network that keeps `pool_size` namespaces wired ahead of time.
    pub fn with_pool(pool_size: usize) -> Self {
        Self::build(24, pool_size)
    }

    fn build(prefix_len: u8, pool_size: usize) -> Self {
        require_host();
        let t = tag();
        let mut second = 200 + (t % 51) as u8;
        if second == 213 {
            second = 214;
        }
        let third = ((t >> 8) & 0xff) as u8;
        let subnet_prefix = format!("10.{second}.{third}.");
        let name = format!("bt{t:06x}");
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = NetConfig {
            state_dir: dir.path().join("state"),
            netns_dir: dir.path().join("netns"),
            cni_bin_dirs: vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")],
            bridge: name.clone(),
            subnet: format!("{subnet_prefix}0/{prefix_len}"),
            network_name: name.clone(),
            pool_size,
            isolation: None,
        };
        let net = std::sync::Arc::new(Network::new(cfg.clone()).expect("network"));
        Fixture {
            net,
            cfg,
            name,
            subnet_prefix,
            _dir: dir,
        }
    }

    pub fn netns(&self, id: &str) -> PathBuf {
        self.cfg.netns_dir.join(id)
    }

    /// berth's reservation file for an address.
    pub fn reservation(&self, ip: IpAddr) -> PathBuf {
        self.addresses_dir().join(ip.to_string())
    }

    /// The owners named by berth's reservations of this subnet's addresses.
    pub fn reservations(&self) -> Vec<String> {
        std::fs::read_dir(self.addresses_dir())
            .map(|rd| {
                rd.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(&self.subnet_prefix)
                    })
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Where berth keeps its address reservations.
    pub fn addresses_dir(&self) -> PathBuf {
        self.cfg.state_dir.join("addresses")
    }

    /// Where `host-local` kept the reservations of groups an earlier berth wired.
    pub fn host_local_dir(&self) -> PathBuf {
        self.cfg.state_dir.join("ipam").join(&self.name)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.net.release();
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .output();
        let _ = nix::mount::umount2(&self.cfg.netns_dir, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Runs a command that must succeed and returns its stdout.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip -o addr` inside a namespace.
pub fn ns_addrs(netns: &Path) -> String {
    let arg = format!("--net={}", netns.display());
    sh("nsenter", &[&arg, "ip", "-o", "addr", "show"])
}

/// `ip -o link show lo` inside a namespace.
pub fn ns_lo(netns: &Path) -> String {
    let arg = format!("--net={}", netns.display());
    sh("nsenter", &[&arg, "ip", "-o", "link", "show", "lo"])
}

pub fn host_link_exists(name: &str) -> bool {
    sh("ip", &["-o", "link", "show"]).lines().any(|line| {
        line.split(':')
            .nth(1)
            .map(|n| n.trim().split('@').next() == Some(name))
            == Some(true)
    })
}

pub fn links_on_bridge(bridge: &str) -> Vec<String> {
    sh("ip", &["-o", "link", "show", "master", bridge])
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_owned()))
        .collect()
}

pub fn is_mounted(path: &Path) -> bool {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let needle = path.to_str().expect("utf-8 path");
    text.lines()
        .any(|line| line.split_whitespace().nth(4) == Some(needle))
}

pub fn nat_rules() -> String {
    sh("iptables", &["-t", "nat", "-S"])
}

/// Whether the nat table masquerades traffic leaving the fixture's subnet, exactly once.
pub fn subnet_masqueraded(fx: &Fixture) -> bool {
    let subnet = &fx.cfg.subnet;
    let rule = format!(
        "-A POSTROUTING -s {subnet} ! -d {subnet} -m comment --comment \"berth network {} {subnet}\" -j MASQUERADE",
        fx.name
    );
    nat_rules().lines().filter(|l| *l == rule).count() == 1
}

/// Chains the nat table jumps to for one container of a network.
pub fn masq_chains(network: &str, id: &str) -> Vec<String> {
    let comment = format!("name: \\\"{network}\\\" id: \\\"{id}\\\"");
    nat_rules()
        .lines()
        .filter(|l| l.starts_with("-A POSTROUTING") && l.contains(&comment))
        .filter_map(|l| l.split(" -j ").nth(1).map(|c| c.trim().to_owned()))
        .collect()
}

/// Runs `f` on a new thread that has joined the namespace at `netns`.
pub fn in_netns<T: Send + 'static>(
    netns: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let file = std::fs::File::open(netns).expect("open netns");
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

/// A one-shot TCP server inside a namespace that answers "pong"; returns once it listens.
pub fn serve_once(netns: &Path, port: u16) -> JoinHandle<()> {
    let (tx, rx) = mpsc::channel();
    let handle = in_netns(netns, move || {
        let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind in netns");
        tx.send(()).expect("ready");
        let (mut conn, _) = listener.accept().expect("accept");
        conn.write_all(b"pong").expect("write");
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("listener ready");
    handle
}

/// Connects to `ip:port` from the calling thread's namespace and reads the answer.
pub fn ask(ip: IpAddr, port: u16) -> String {
    let mut conn = TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("connecting to {ip}:{port}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read");
    answer
}

/// Polls `cond` for up to five seconds.
pub fn wait_until(cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met in 5s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
