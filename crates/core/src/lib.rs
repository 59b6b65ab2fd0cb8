//! berth's domain model: container group specs, their normalisation to a supported size,
//! container and group states, restart decisions and events. Pure: no I/O, no async.

pub mod cache;
pub mod capability;
pub mod dns;
pub mod event;
pub mod id;
pub mod metering;
pub mod metric;
pub mod node;
pub mod placement;
pub mod price;
pub mod probe;
pub mod publish;
pub mod record;
pub mod restart;
pub mod runtime_class;
pub mod size;
pub mod spec;
pub mod spot;
pub mod state;
pub mod sysctl;
pub mod tagging;
pub mod volume;
pub mod volume_policy;

pub use cache::{CacheStatus, ImageCacheRecord};
pub use capability::{CapabilityPolicy, CapabilityRefused};
pub use dns::{DnsConfig, DnsOption, DnsPolicy, HostAlias};
pub use event::{Event, EventDetail, EventType};
pub use id::{is_group_id, GroupId};
pub use node::{JoinToken, NodeInfo, NodeOffer, NodeRecord, NodeState};
pub use probe::{Handler, HttpHeader, Probe, Scheme, Streak};
pub use publish::{PortPolicy, Publication, PublishRefused, PublishedPort};
pub use record::{ChangeToken, GroupRecord, ObservedGroup, TokenSeen, MAX_CHANGE_TOKENS};
pub use restart::{
    backoff_delay, setup_backoff, should_restart, BACKOFF_MAX, BACKOFF_RESET_AFTER, BACKOFF_START,
    SETUP_BACKOFF_START,
};
pub use runtime_class::{
    PolicyError, RuntimeClass, RuntimeClassPolicy, UnknownRuntimeClass, ALL_RUNTIME_CLASSES,
};
pub use size::{normalize_size, Size, SizeError, DEFAULT_CPU, DEFAULT_MEMORY};
pub use spec::{
    ContainerSpec, EnvVar, GroupSpec, ImagePullPolicy, PortSpec, RegistryCredential, RestartPolicy,
    Tag, DEFAULT_EPHEMERAL_STORAGE_GIB, MAX_EPHEMERAL_STORAGE_GIB, MAX_FS_GROUP,
};
pub use spot::{SpotStrategy, SpotTerms};
pub use state::{derive_group_status, ContainerState, ContainerStatus, GroupStatus, StateKind};
pub use sysctl::Sysctl;
pub use tagging::{
    is_reserved_tag_key, TagChange, TagResourceType, TooManyTags, MAX_TAGS_PER_RESOURCE,
    RESERVED_TAG_PREFIX,
};
pub use volume::{
    ConfigFile, EmptyDirMedium, HostPathType, MountPropagation, Volume, VolumeMount, VolumeSource,
};
pub use volume_policy::{VolumePolicy, VolumeRefused};
