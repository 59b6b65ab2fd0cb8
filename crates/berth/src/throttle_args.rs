//! Flags of `berth serve` for throttling: the token buckets each account gets per kind of
//! action (`berth_server::ThrottleConfig`).

use berth_server::{Rate, ThrottleConfig};

#[derive(clap::Args, Clone, Debug)]
pub struct ThrottleArgs {
    /// Requests of one account that CreateContainerGroup, DeleteContainerGroup and
    /// RestartContainerGroup each allow at once (and the other actions that change something
    /// together).
    #[arg(long, default_value_t = 100)]
    pub throttle_write_burst: u32,
    /// Those requests allowed per second after a burst (0: not throttled).
    #[arg(long, default_value_t = 20.0, value_parser = crate::cache_node::non_negative)]
    pub throttle_write_rate: f64,
    /// Requests of one account that the reading actions (Describe*, ListUsage) allow at once.
    #[arg(long, default_value_t = 20_000)]
    pub throttle_read_burst: u32,
    /// Reading requests allowed per second after a burst (0: not throttled).
    #[arg(long, default_value_t = 10_000.0, value_parser = crate::cache_node::non_negative)]
    pub throttle_read_rate: f64,
}

impl ThrottleArgs {
    pub fn config(&self) -> ThrottleConfig {
        ThrottleConfig {
            write: Rate {
                burst: self.throttle_write_burst,
                per_second: self.throttle_write_rate,
            },
            read: Rate {
                burst: self.throttle_read_burst,
                per_second: self.throttle_read_rate,
            },
        }
    }
}
