//! Errors of the network crate.
//!
//! Each variant names the step that failed and carries its context (id, path,
//! plugin); the underlying cause sits in `#[source]`, never in the message.

use std::path::PathBuf;

/// Everything that can go wrong while wiring or unwiring a group's network.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A CNI plugin binary named by the configuration is in none of the plugin directories.
    #[error("cni plugin binary `{plugin}` not found in any of {searched:?}")]
    MissingPlugin {
        /// The plugin type, which is also the binary name.
        plugin: String,
        /// The directories that were searched.
        searched: Vec<PathBuf>,
    },

    /// An nftables transaction of the isolation tables failed.
    #[error("firewall: {detail}")]
    Firewall {
        /// What nft said.
        detail: String,
        /// The transaction, for the log.
        script: String,
    },

    /// The configuration cannot be used as given.
    #[error("invalid network configuration: {reason}")]
    InvalidConfig {
        /// What is wrong with it.
        reason: String,
    },

    /// A group id is unusable as a CNI container id or a file name.
    #[error("invalid container group id `{id}`: {reason}")]
    InvalidId {
        /// The id as given.
        id: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// The group already has a network namespace.
    #[error("network namespace for `{id}` already exists at {path}")]
    AlreadyExists {
        /// The group id.
        id: String,
        /// The namespace file.
        path: PathBuf,
    },

    /// A filesystem operation failed.
    #[error("{step} {path}")]
    Io {
        /// What was being done.
        step: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A namespace or mount system call failed.
    #[error("{step} {path}")]
    Sys {
        /// What was being done.
        step: &'static str,
        /// The namespace file or directory involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: nix::Error,
    },

    /// The thread that creates a network namespace could not be started or died.
    #[error("network namespace thread for {path} failed")]
    NetnsThread {
        /// The namespace file that was being created.
        path: PathBuf,
        /// The cause, when there is one.
        #[source]
        source: Option<std::io::Error>,
    },

    /// A plugin process could not be run.
    #[error("running cni plugin `{plugin}` ({command})")]
    PluginSpawn {
        /// The plugin type.
        plugin: String,
        /// The CNI command (ADD, DEL).
        command: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A plugin reported a CNI error.
    #[error("cni plugin `{plugin}` {command} failed with code {code}: {msg}{}", details_suffix(.details))]
    Plugin {
        /// The plugin type.
        plugin: String,
        /// The CNI command (ADD, DEL).
        command: &'static str,
        /// The CNI error code.
        code: u32,
        /// The plugin's message.
        msg: String,
        /// The plugin's details, possibly empty.
        details: String,
    },

    /// A plugin exited unsuccessfully without a readable CNI error.
    #[error("cni plugin `{plugin}` {command} exited with {status}: {stderr}")]
    PluginExit {
        /// The plugin type.
        plugin: String,
        /// The CNI command (ADD, DEL).
        command: &'static str,
        /// The exit status as text.
        status: String,
        /// What the plugin wrote on stdout and stderr.
        stderr: String,
    },

    /// A plugin's output could not be understood.
    #[error("unreadable output of cni plugin `{plugin}` ({command})")]
    PluginOutput {
        /// The plugin type.
        plugin: String,
        /// The CNI command (ADD, DEL).
        command: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },

    /// A host tool (iptables) could not be run.
    #[error("running `{tool}`")]
    ToolSpawn {
        /// The tool.
        tool: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A host tool (iptables) failed.
    #[error("`{tool} {args}` failed: {stderr}")]
    Tool {
        /// The tool.
        tool: &'static str,
        /// Its arguments, space-separated.
        args: String,
        /// What it wrote on stderr.
        stderr: String,
    },

    /// A netlink request of a group's wiring failed.
    #[error("{step} `{link}`")]
    Link {
        /// What was being done.
        step: &'static str,
        /// The interface involved.
        link: String,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },

    /// The bridge's name is held by an interface that is not a bridge.
    #[error("`{name}` already exists but is not a bridge")]
    NotABridge {
        /// The bridge's name.
        name: String,
    },

    /// The bridge holds an IPv4 address other than the groups' gateway.
    #[error("bridge `{bridge}` already has an IP address different from {address}")]
    BridgeAddress {
        /// The bridge's name.
        bridge: String,
        /// The gateway address it should hold.
        address: String,
    },

    /// The host end of a group's veth pair did not come up.
    #[error("bridge port `{link}` is not up (operational state {state})")]
    PortDown {
        /// The host end.
        link: String,
        /// Its last `IFLA_OPERSTATE`.
        state: u8,
    },

    /// Every address of the subnet is held by a group or the pool.
    #[error("no address of the subnet {subnet} is free")]
    AddressesExhausted {
        /// The groups' subnet.
        subnet: String,
    },

    /// The final CNI result holds no usable address.
    #[error("cni result for `{id}` has no usable ip address")]
    NoAddress {
        /// The group id.
        id: String,
    },

    /// A JSON document berth writes could not be encoded.
    #[error("encoding {what}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" ({details})")
    }
}
