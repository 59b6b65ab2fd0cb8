//! Throttling: a token bucket per account and action class, taken after a request is
//! authenticated and before it is decoded and dispatched. A request over the limit answers 400
//! `Throttling.User` with `x-acs-retry-after` (milliseconds until a token is back).
//!
//! Buckets live in shards chosen by the account's hash, each a plain mutex held only for a few
//! arithmetic operations (never across an await), so accounts in different shards never wait
//! for each other and a flood of one account costs others one short lock at most. A bucket that
//! has refilled to its burst is the same as a new one, so idle accounts' buckets are dropped
//! when a shard is swept (at most once a minute, or when it grows past [`SHARD_SWEEP_LEN`]):
//! memory is bounded by the accounts active in the last minute.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_eci::{Action, ApiError};

/// Shards of the bucket map.
const SHARDS: usize = 32;

/// Accounts a shard holds before it is swept early.
const SHARD_SWEEP_LEN: usize = 1024;

/// How often a shard drops the buckets of idle accounts.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Burst and refill of one class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Requests a full bucket allows at once.
    pub burst: u32,
    /// Tokens added per second; 0 turns throttling of the class off.
    pub per_second: f64,
}

/// Limits of each kind of action, the same for every account.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThrottleConfig {
    /// CreateContainerGroup, DeleteContainerGroup and RestartContainerGroup each have a bucket
    /// of this size; the other actions that change something (image caches, exec) share one.
    pub write: Rate,
    /// Describe*, List* and log reads share one bucket.
    pub read: Rate,
}

impl Default for ThrottleConfig {
    /// ECI's limits for group changes (burst 100, 20 per second); reads much higher (above
    /// the Describe rate docs/SPEC.md promises for one account).
    fn default() -> Self {
        Self {
            write: Rate {
                burst: 100,
                per_second: 20.0,
            },
            read: Rate {
                burst: 20_000,
                per_second: 10_000.0,
            },
        }
    }
}

/// Which bucket of an account an action takes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Create,
    Delete,
    Restart,
    OtherWrite,
    Read,
    /// Sign-ins of the console, per access key id (never an action of an account).
    SignIn,
}

const CLASSES: usize = 6;

/// Sign-ins with one access key id: 10 at once, then one every 6 s.
pub const SIGN_IN: Rate = Rate {
    burst: 10,
    per_second: 1.0 / 6.0,
};

impl Class {
    fn of(action: Action) -> Class {
        match action {
            Action::CreateContainerGroup => Class::Create,
            Action::DeleteContainerGroup => Class::Delete,
            Action::RestartContainerGroup => Class::Restart,
            Action::UpdateContainerGroup
            | Action::CreateImageCache
            | Action::UpdateImageCache
            | Action::DeleteImageCache
            | Action::ExecContainerCommand
            | Action::PortForward
            | Action::TagResources
            | Action::UntagResources => Class::OtherWrite,
            Action::DescribeContainerGroups
            | Action::DescribeContainerGroupStatus
            | Action::DescribeContainerGroupEvents
            | Action::DescribeContainerLog
            | Action::DescribeRegions
            | Action::DescribeImageCaches
            | Action::ListUsage
            | Action::DescribeContainerGroupMetric
            | Action::DescribeMultiContainerGroupMetric
            | Action::DescribeContainerGroupPrice
            | Action::DescribeUsage
            | Action::ListTagResources => Class::Read,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Tokens refilled up to `now`.
    fn refill(&mut self, rate: Rate, now: Instant) {
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + secs * rate.per_second).min(f64::from(rate.burst));
        self.at = now;
    }
}

struct Shard {
    accounts: HashMap<String, [Option<Bucket>; CLASSES]>,
    swept: Instant,
}

/// The buckets of every account.
pub struct Throttle {
    config: ThrottleConfig,
    hasher: RandomState,
    shards: Vec<Mutex<Shard>>,
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Self {
        let now = Instant::now();
        Self {
            config,
            hasher: RandomState::new(),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        accounts: HashMap::new(),
                        swept: now,
                    })
                })
                .collect(),
        }
    }

    fn rate(&self, class: Class) -> Rate {
        match class {
            Class::Read => self.config.read,
            Class::SignIn => SIGN_IN,
            _ => self.config.write,
        }
    }

    /// Takes a token of `account` for `action`, or answers the milliseconds until one is back.
    pub fn take(&self, account: &str, action: Action) -> Result<(), u64> {
        self.take_at(account, action, Instant::now())
    }

    /// Takes a token for one sign-in attempt with the access key `key_id`, or answers the
    /// milliseconds until one is back; the limit is [`SIGN_IN`] whatever the configuration.
    pub fn take_sign_in(&self, key_id: &str) -> Result<(), u64> {
        self.take_class(key_id, Class::SignIn, Instant::now())
    }

    fn take_at(&self, account: &str, action: Action, now: Instant) -> Result<(), u64> {
        self.take_class(account, Class::of(action), now)
    }

    fn take_class(&self, account: &str, class: Class, now: Instant) -> Result<(), u64> {
        let rate = self.rate(class);
        if rate.per_second <= 0.0 {
            return Ok(());
        }
        let i = (self.hasher.hash_one(account) as usize) % SHARDS;
        let mut shard = self.shards[i].lock().unwrap_or_else(|p| p.into_inner());
        if shard.accounts.len() >= SHARD_SWEEP_LEN
            || now.saturating_duration_since(shard.swept) >= SWEEP_EVERY
        {
            self.sweep(&mut shard, now);
        }
        if !shard.accounts.contains_key(account) {
            shard.accounts.insert(account.to_string(), [None; CLASSES]);
        }
        let Some(buckets) = shard.accounts.get_mut(account) else {
            return Ok(());
        };
        let bucket = buckets[class.index()].get_or_insert(Bucket {
            tokens: f64::from(rate.burst),
            at: now,
        });
        bucket.refill(rate, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let ms = ((1.0 - bucket.tokens) / rate.per_second * 1000.0).ceil();
        Err((ms as u64).max(1))
    }

    /// Drops the buckets that are full again (as good as new), and accounts left with none.
    fn sweep(&self, shard: &mut Shard, now: Instant) {
        shard.accounts.retain(|_, buckets| {
            for (i, slot) in buckets.iter_mut().enumerate() {
                let class = if i == Class::Read.index() {
                    Class::Read
                } else if i == Class::SignIn.index() {
                    Class::SignIn
                } else {
                    Class::Create
                };
                let rate = self.rate(class);
                if let Some(b) = slot {
                    b.refill(rate, now);
                    if b.tokens >= f64::from(rate.burst) {
                        *slot = None;
                    }
                }
            }
            buckets.iter().any(Option::is_some)
        });
        shard.swept = now;
    }

    /// How many accounts hold a bucket now.
    #[cfg(test)]
    fn accounts(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.accounts.len()))
            .sum()
    }
}

/// The answer to a sign-in over the limit.
pub(crate) fn sign_in_throttled(ms: u64) -> ApiError {
    ApiError::new(
        400,
        "Throttling.User",
        format!("Request was denied due to user flow control: too many sign-ins with this AccessKeyId; retry in {} s", ms.div_ceil(1000)),
    )
}

/// The answer to a request over the limit.
pub(crate) fn throttled(action: Action) -> ApiError {
    ApiError::new(
        400,
        "Throttling.User",
        format!(
            "Request was denied due to user flow control: too many {} requests of this account",
            action.as_str()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Throttle {
        Throttle::new(ThrottleConfig {
            write: Rate {
                burst: 3,
                per_second: 2.0,
            },
            read: Rate {
                burst: 5,
                per_second: 10.0,
            },
        })
    }

    #[test]
    fn sign_ins_have_their_own_small_bucket() {
        let t = Throttle::new(ThrottleConfig::default());
        let t0 = Instant::now();
        for _ in 0..SIGN_IN.burst {
            assert_eq!(t.take_class("LTAI1", Class::SignIn, t0), Ok(()));
        }
        assert_eq!(t.take_class("LTAI1", Class::SignIn, t0), Err(6000));
        assert_eq!(t.take_class("LTAI2", Class::SignIn, t0), Ok(()));
        assert_eq!(
            t.take_at("LTAI1", Action::DescribeContainerGroups, t0),
            Ok(())
        );
    }

    #[test]
    fn a_burst_then_the_rate() {
        let t = small();
        let t0 = Instant::now();
        let create = Action::CreateContainerGroup;
        for _ in 0..3 {
            assert_eq!(t.take_at("a", create, t0), Ok(()));
        }
        assert_eq!(t.take_at("a", create, t0), Err(500));
        assert_eq!(
            t.take_at("a", create, t0 + Duration::from_millis(400)),
            Err(100)
        );
        assert_eq!(
            t.take_at("a", create, t0 + Duration::from_millis(500)),
            Ok(())
        );
        // Other classes and other accounts have buckets of their own.
        assert_eq!(t.take_at("a", Action::DeleteContainerGroup, t0), Ok(()));
        assert_eq!(t.take_at("a", Action::DescribeContainerGroups, t0), Ok(()));
        assert_eq!(t.take_at("b", create, t0), Ok(()));
    }

    #[test]
    fn a_zero_rate_turns_a_class_off() {
        let t = Throttle::new(ThrottleConfig {
            read: Rate {
                burst: 0,
                per_second: 0.0,
            },
            ..ThrottleConfig::default()
        });
        for _ in 0..10_000 {
            assert_eq!(t.take("a", Action::DescribeContainerGroups), Ok(()));
        }
    }

    #[test]
    fn idle_accounts_are_dropped() {
        let t = small();
        let t0 = Instant::now();
        for n in 0..5000 {
            let _ = t.take_at(&format!("acct{n}"), Action::CreateContainerGroup, t0);
        }
        assert!(t.accounts() <= SHARDS * SHARD_SWEEP_LEN);
        // Two seconds refill every bucket: the next sweep drops them all but the new one.
        let later = t0 + SWEEP_EVERY;
        for s in &t.shards {
            let mut s = s.lock().unwrap();
            t.sweep(&mut s, later);
        }
        assert_eq!(t.accounts(), 0);
        // A throttled account keeps its bucket: dropping it would give a fresh burst.
        for _ in 0..4 {
            let _ = t.take_at("busy", Action::CreateContainerGroup, later);
        }
        for s in &t.shards {
            let mut s = s.lock().unwrap();
            t.sweep(&mut s, later);
        }
        assert_eq!(t.accounts(), 1);
        assert!(t
            .take_at("busy", Action::CreateContainerGroup, later)
            .is_err());
    }
}
