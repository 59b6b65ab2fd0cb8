//! Which CreateContainerGroup parameters berth honours, which it ignores because they have
//! no meaning on a self-hosted machine, and which it refuses because it cannot do what they
//! ask yet. A parameter is never accepted and then silently dropped: a request that names
//! one berth cannot honour gets `InvalidParameter` naming it, before anything is recorded.
//!
//! Names are matched with their list indexes replaced by `N` (`Container.2.Command.1` →
//! `Container.N.Command.N`). Names outside ECI's CreateContainerGroup table (the signature
//! and common parameters) are not this module's concern.

use crate::error::ApiError;
use crate::params::Params;

/// What berth does with one parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// Decoded and acted on.
    Honoured,
    /// Cloud placement, billing or account knobs with no effect on a self-hosted node.
    Ignored,
    /// Refused whatever its value.
    Refused,
    /// Refused unless (ignoring case) one of the values, which ask for what berth does
    /// anyway. An empty value or `None` is unset for every rule.
    RefusedUnless(&'static [&'static str]),
}

use Rule::*;

const FALSE: &[&str] = &["false"];

/// The container fields (after `Container.N.` or `InitContainer.N.`).
const CONTAINER: &[(&str, Rule)] = &[
    ("Name", Honoured),
    ("Image", Honoured),
    ("ImagePullPolicy", Honoured),
    ("Command.N", Honoured),
    ("Arg.N", Honoured),
    ("WorkingDir", Honoured),
    ("Cpu", Honoured),
    ("Memory", Honoured),
    ("Gpu", RefusedUnless(&["0"])),
    ("EnvironmentVar.N", Honoured),
    ("EnvironmentVar.N.Key", Honoured),
    ("EnvironmentVar.N.Value", Honoured),
    ("EnvironmentVar.N.FieldRef", Honoured),
    ("EnvironmentVar.N.FieldRef.FieldPath", Honoured),
    ("EnvironmentVarHide", RefusedUnless(FALSE)),
    ("Port.N", Honoured),
    ("Port.N.Port", Honoured),
    ("Port.N.Protocol", Honoured),
    // berth's extension: the host port to publish on (with AutoCreateEip=true).
    ("Port.N.HostPort", Honoured),
    ("SecurityContext", Honoured),
    ("SecurityContext.Capability", Honoured),
    ("SecurityContext.Capability.Add.N", Honoured),
    // berth's extension (docs/API-EXTENSIONS.md).
    ("SecurityContext.Capability.Drop.N", Honoured),
    ("SecurityContext.RunAsUser", Honoured),
    ("SecurityContext.ReadOnlyRootFilesystem", Honoured),
    ("SecurityContextRunAsGroup", Honoured),
    ("SecurityContextRunAsNonRoot", Honoured),
    ("SecurityContextPrivileged", RefusedUnless(FALSE)),
    ("Stdin", RefusedUnless(FALSE)),
    ("StdinOnce", RefusedUnless(FALSE)),
    ("Tty", RefusedUnless(FALSE)),
    (
        "TerminationMessagePath",
        RefusedUnless(&["/dev/termination-log"]),
    ),
    ("TerminationMessagePolicy", RefusedUnless(&["File"])),
    ("VolumeMount.N", Honoured),
    ("VolumeMount.N.MountPath", Honoured),
    ("VolumeMount.N.MountPropagation", Honoured),
    ("VolumeMount.N.Name", Honoured),
    ("VolumeMount.N.ReadOnly", Honoured),
    ("VolumeMount.N.SubPath", Honoured),
];

/// Fields of app containers only: probes and lifecycle hooks (`StartupProbe` is berth's
/// extension, Kubernetes' field).
const APP_CONTAINER: &[(&str, Rule)] = &[
    ("LivenessProbe", Honoured),
    ("LivenessProbe.Exec", Honoured),
    ("LivenessProbe.Exec.Command.N", Honoured),
    ("LivenessProbe.HttpGet", Honoured),
    ("LivenessProbe.HttpGet.Path", Honoured),
    ("LivenessProbe.HttpGet.Port", Honoured),
    ("LivenessProbe.HttpGet.Scheme", Honoured),
    // berth's extension, Kubernetes' httpHeaders (`probes.rs`).
    ("LivenessProbe.HttpGet.HttpHeader.N", Honoured),
    ("LivenessProbe.HttpGet.HttpHeader.N.Name", Honoured),
    ("LivenessProbe.HttpGet.HttpHeader.N.Value", Honoured),
    ("LivenessProbe.TcpSocket", Honoured),
    ("LivenessProbe.TcpSocket.Port", Honoured),
    ("LivenessProbe.InitialDelaySeconds", Honoured),
    ("LivenessProbe.PeriodSeconds", Honoured),
    ("LivenessProbe.SuccessThreshold", Honoured),
    ("LivenessProbe.FailureThreshold", Honoured),
    ("LivenessProbe.TimeoutSeconds", Honoured),
    ("ReadinessProbe", Honoured),
    ("ReadinessProbe.Exec", Honoured),
    ("ReadinessProbe.Exec.Command.N", Honoured),
    ("ReadinessProbe.HttpGet", Honoured),
    ("ReadinessProbe.HttpGet.Path", Honoured),
    ("ReadinessProbe.HttpGet.Port", Honoured),
    ("ReadinessProbe.HttpGet.Scheme", Honoured),
    // berth's extension, Kubernetes' httpHeaders (`probes.rs`).
    ("ReadinessProbe.HttpGet.HttpHeader.N", Honoured),
    ("ReadinessProbe.HttpGet.HttpHeader.N.Name", Honoured),
    ("ReadinessProbe.HttpGet.HttpHeader.N.Value", Honoured),
    ("ReadinessProbe.TcpSocket", Honoured),
    ("ReadinessProbe.TcpSocket.Port", Honoured),
    ("ReadinessProbe.InitialDelaySeconds", Honoured),
    ("ReadinessProbe.PeriodSeconds", Honoured),
    ("ReadinessProbe.SuccessThreshold", Honoured),
    ("ReadinessProbe.FailureThreshold", Honoured),
    ("ReadinessProbe.TimeoutSeconds", Honoured),
    ("StartupProbe", Honoured),
    ("StartupProbe.Exec", Honoured),
    ("StartupProbe.Exec.Command.N", Honoured),
    ("StartupProbe.HttpGet", Honoured),
    ("StartupProbe.HttpGet.Path", Honoured),
    ("StartupProbe.HttpGet.Port", Honoured),
    ("StartupProbe.HttpGet.Scheme", Honoured),
    // berth's extension, Kubernetes' httpHeaders (`probes.rs`).
    ("StartupProbe.HttpGet.HttpHeader.N", Honoured),
    ("StartupProbe.HttpGet.HttpHeader.N.Name", Honoured),
    ("StartupProbe.HttpGet.HttpHeader.N.Value", Honoured),
    ("StartupProbe.TcpSocket", Honoured),
    ("StartupProbe.TcpSocket.Port", Honoured),
    ("StartupProbe.InitialDelaySeconds", Honoured),
    ("StartupProbe.PeriodSeconds", Honoured),
    ("StartupProbe.SuccessThreshold", Honoured),
    ("StartupProbe.FailureThreshold", Honoured),
    ("StartupProbe.TimeoutSeconds", Honoured),
    ("LifecyclePostStartHandlerExec.N", Honoured),
    ("LifecyclePostStartHandlerHttpGetHost", Honoured),
    ("LifecyclePostStartHandlerHttpGetHttpHeader.N", Honoured),
    (
        "LifecyclePostStartHandlerHttpGetHttpHeader.N.Name",
        Honoured,
    ),
    (
        "LifecyclePostStartHandlerHttpGetHttpHeader.N.Value",
        Honoured,
    ),
    ("LifecyclePostStartHandlerHttpGetPath", Honoured),
    ("LifecyclePostStartHandlerHttpGetPort", Honoured),
    ("LifecyclePostStartHandlerHttpGetScheme", Honoured),
    ("LifecyclePostStartHandlerTcpSocketHost", Honoured),
    ("LifecyclePostStartHandlerTcpSocketPort", Honoured),
    ("LifecyclePreStopHandlerExec.N", Honoured),
    ("LifecyclePreStopHandlerHttpGetHost", Honoured),
    ("LifecyclePreStopHandlerHttpGetHttpHeader.N", Honoured),
    ("LifecyclePreStopHandlerHttpGetHttpHeader.N.Name", Honoured),
    ("LifecyclePreStopHandlerHttpGetHttpHeader.N.Value", Honoured),
    ("LifecyclePreStopHandlerHttpGetPath", Honoured),
    ("LifecyclePreStopHandlerHttpGetPort", Honoured),
    ("LifecyclePreStopHandlerHttpGetScheme", Honoured),
    ("LifecyclePreStopHandlerTcpSocketHost", Honoured),
    ("LifecyclePreStopHandlerTcpSocketPort", Honoured),
];

/// Prefixes of fields refused whatever follows: in init containers (probes, hooks, as
/// Kubernetes), and in app containers when [`APP_CONTAINER`] does not list the name.
const CONTAINER_REFUSED_PREFIXES: &[&str] = &[
    "LivenessProbe.",
    "ReadinessProbe.",
    "StartupProbe.",
    "LifecyclePostStart",
    "LifecyclePreStop",
];

/// The group's own fields.
const GROUP: &[(&str, Rule)] = &[
    ("ContainerGroupName", Honoured),
    ("RegionId", Honoured),
    ("ZoneId", Honoured),
    ("Cpu", Honoured),
    ("Memory", Honoured),
    ("RestartPolicy", Honoured),
    ("TerminationGracePeriodSeconds", Honoured),
    ("ActiveDeadlineSeconds", Honoured),
    ("DnsConfig", Honoured),
    ("DnsConfig.NameServer.N", Honoured),
    ("DnsConfig.Option.N", Honoured),
    ("DnsConfig.Option.N.Name", Honoured),
    ("DnsConfig.Option.N.Value", Honoured),
    ("DnsConfig.Search.N", Honoured),
    ("HostAliase.N", Honoured),
    ("HostAliase.N.Hostname.N", Honoured),
    ("HostAliase.N.Ip", Honoured),
    ("HostName", Honoured),
    ("ClientToken", Honoured),
    ("DryRun", Honoured),
    ("ImageSnapshotId", Honoured),
    ("AutoMatchImageCache", Honoured),
    ("EphemeralStorage", Honoured),
    ("PlainHttpRegistry", Honoured),
    ("InsecureRegistry", Honoured),
    ("Tag.N", Honoured),
    ("Tag.N.Key", Honoured),
    ("Tag.N.Value", Honoured),
    ("ImageRegistryCredential.N", Honoured),
    ("ImageRegistryCredential.N.Server", Honoured),
    ("ImageRegistryCredential.N.UserName", Honoured),
    ("ImageRegistryCredential.N.Password", Honoured),
    ("Volume.N", Honoured),
    ("Volume.N.Name", Honoured),
    ("Volume.N.Type", Honoured),
    ("Volume.N.EmptyDirVolume", Honoured),
    ("Volume.N.EmptyDirVolume.Medium", Honoured),
    ("Volume.N.EmptyDirVolume.SizeLimit", Honoured),
    ("Volume.N.ConfigFileVolume", Honoured),
    ("Volume.N.ConfigFileVolume.DefaultMode", Honoured),
    ("Volume.N.ConfigFileVolume.DefaultModel", Honoured),
    ("Volume.N.ConfigFileVolume.ConfigFileToPath.N", Honoured),
    (
        "Volume.N.ConfigFileVolume.ConfigFileToPath.N.Path",
        Honoured,
    ),
    (
        "Volume.N.ConfigFileVolume.ConfigFileToPath.N.Content",
        Honoured,
    ),
    (
        "Volume.N.ConfigFileVolume.ConfigFileToPath.N.Mode",
        Honoured,
    ),
    ("Volume.N.NFSVolume", Honoured),
    ("Volume.N.NFSVolume.Server", Honoured),
    ("Volume.N.NFSVolume.Path", Honoured),
    ("Volume.N.NFSVolume.ReadOnly", Honoured),
    ("Volume.N.HostPathVolume", Honoured),
    ("Volume.N.HostPathVolume.Path", Honoured),
    ("Volume.N.HostPathVolume.Type", Honoured),
    // Cloud placement, networking objects, billing and account plumbing.
    ("OwnerAccount", Ignored),
    ("OwnerId", Ignored),
    ("ResourceOwnerAccount", Ignored),
    ("ResourceOwnerId", Ignored),
    ("ResourceGroupId", Ignored),
    ("SecurityGroupId", Ignored),
    ("VSwitchId", Ignored),
    ("ScheduleStrategy", Ignored),
    ("ComputeCategory.N", Ignored),
    ("ImageAccelerateMode", Ignored),
    ("OverheadReservationOption", Ignored),
    (
        "OverheadReservationOption.EnableOverheadReservation",
        Ignored,
    ),
    ("AcrRegistryInfo.N", Ignored),
    ("AcrRegistryInfo.N.ArnService", Ignored),
    ("AcrRegistryInfo.N.ArnUser", Ignored),
    ("AcrRegistryInfo.N.Domain.N", Ignored),
    ("AcrRegistryInfo.N.InstanceId", Ignored),
    ("AcrRegistryInfo.N.InstanceName", Ignored),
    ("AcrRegistryInfo.N.RegionId", Ignored),
    ("SpotStrategy", Honoured),
    ("SpotPriceLimit", Honoured),
    ("SpotDuration", Honoured),
    ("StrictSpot", Honoured),
    ("OsType", RefusedUnless(&["Linux"])),
    ("CpuArchitecture", RefusedUnless(&["AMD64"])),
    // Asked for, not yet done.
    ("InstanceType", Refused),
    ("CpuOptionsCore", Refused),
    ("CpuOptionsNuma", Refused),
    ("CpuOptionsThreadsPerCore", Refused),
    ("ContainerResourceView", RefusedUnless(FALSE)),
    ("CorePattern", Refused),
    ("SecurityContext", Honoured),
    ("SecurityContext.Sysctl.N", Honoured),
    ("SecurityContext.Sysctl.N.Name", Honoured),
    ("SecurityContext.Sysctl.N.Value", Honoured),
    // berth's extension, Kubernetes' fsGroup (`security.rs`).
    ("SecurityContext.FsGroup", Honoured),
    // berth's extension: the group's runtime class (`create.rs`), checked against the
    // account's policy by the control plane.
    ("RuntimeClassName", Honoured),
    ("HostSecurityContext", Refused),
    ("HostSecurityContext.Sysctl.N", Refused),
    ("HostSecurityContext.Sysctl.N.Name", Refused),
    ("HostSecurityContext.Sysctl.N.Value", Refused),
    ("ShareProcessNamespace", RefusedUnless(FALSE)),
    // Decoded (`dns.rs`): Default and None; the cluster values are refused by name there.
    ("DnsPolicy", Honoured),
    // The node's public address, with the declared ports mapped on it (`create.rs`). berth
    // has no EIP objects: an existing one cannot be named, nor its bandwidth or ISP chosen.
    ("AutoCreateEip", Honoured),
    ("EipInstanceId", Refused),
    ("EipBandwidth", Refused),
    ("EipCommonBandwidthPackage", Refused),
    ("EipISP", Refused),
    ("EgressBandwidth", Refused),
    ("IngressBandwidth", Refused),
    ("Ipv6AddressCount", RefusedUnless(&["0"])),
    ("Ipv6GatewayBandwidth", Refused),
    ("Ipv6GatewayBandwidthEnable", RefusedUnless(FALSE)),
    ("FixedIp", RefusedUnless(FALSE)),
    ("FixedIpRetainHour", Refused),
    ("PrivateIpAddress", Refused),
    ("RamRoleName", Refused),
    ("NtpServer.N", Refused),
    ("GpuDriverVersion", Refused),
    ("DataCacheBucket", Refused),
    ("DataCacheBurstingEnabled", RefusedUnless(FALSE)),
    ("DataCachePL", Refused),
    ("DataCacheProvisionedIops", Refused),
];

/// Group parameter lists refused whatever follows unless [`GROUP`] honours the name (the
/// volume types berth does not implement: NFS, host path, flex, disk).
const GROUP_REFUSED_PREFIXES: &[&str] = &["Volume."];

/// `Container.2.Command.1` → `Container.N.Command.N`.
fn pattern(name: &str) -> String {
    name.split('.')
        .map(|s| {
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                "N"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn rule_of(name: &str) -> Option<Rule> {
    let pat = pattern(name);
    for list in ["Container.N.", "InitContainer.N."] {
        if let Some(field) = pat.strip_prefix(list) {
            if list == "Container.N." {
                if let Some((_, r)) = APP_CONTAINER.iter().find(|(n, _)| *n == field) {
                    return Some(*r);
                }
            }
            if CONTAINER_REFUSED_PREFIXES
                .iter()
                .any(|p| field.starts_with(p))
            {
                return Some(Refused);
            }
            return CONTAINER.iter().find(|(n, _)| *n == field).map(|(_, r)| *r);
        }
    }
    if let Some(rule) = GROUP.iter().find(|(n, _)| *n == pat).map(|(_, r)| *r) {
        return Some(rule);
    }
    if GROUP_REFUSED_PREFIXES.iter().any(|p| pat.starts_with(p)) || pat == "Volume" {
        return Some(Refused);
    }
    None
}

/// Refuses the first parameter berth cannot honour.
pub fn check_create(p: &Params) -> Result<(), ApiError> {
    for (name, value) in p.iter() {
        // The SDKs send `None` (or nothing) for a field left unset.
        let v = value.trim();
        if v.is_empty() || v == "None" {
            continue;
        }
        let refused = match rule_of(name) {
            None | Some(Honoured) | Some(Ignored) => false,
            Some(Refused) => true,
            Some(RefusedUnless(ok)) => !ok.iter().any(|o| o.eq_ignore_ascii_case(v)),
        };
        if refused && pattern(name).starts_with("Eip") {
            return Err(ApiError::invalid_parameter(
                name,
                "is not supported: berth has no EIP objects; AutoCreateEip=true publishes the \
                 group's ports on the node's public address",
            ));
        }
        if refused {
            return Err(ApiError::invalid_parameter(
                name,
                "is not supported by berth yet (leave it out, or give the value berth does anyway)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(q: &str) -> Result<(), ApiError> {
        check_create(&Params::parse(q, None).unwrap())
    }

    #[test]
    fn indexes_become_n() {
        assert_eq!(pattern("Container.12.Command.3"), "Container.N.Command.N");
        assert_eq!(
            pattern("Volume.1.NFSVolume.Server"),
            "Volume.N.NFSVolume.Server"
        );
    }

    #[test]
    fn honoured_and_ignored_parameters_pass() {
        check("ContainerGroupName=a&Container.1.Image=b&Container.1.Command.1=sh&SecurityGroupId=sg&VSwitchId=v1,v2&Container.1.Tty=false&SpotStrategy=NoSpot&Signature=x&AccessKeyId=y").unwrap();
        check("Container.1.LivenessProbe.TcpSocket.Port=80&Container.2.LifecyclePreStopHandlerExec.1=true&Container.1.StartupProbe.Exec.Command.1=true").unwrap();
        check("InitContainer.2.SecurityContext.Capability.Add.1=NET_ADMIN&Ipv6AddressCount=0")
            .unwrap();
    }

    #[test]
    fn unhonoured_parameters_are_refused_by_name() {
        for q in [
            "Volume.2.FlexVolume.Driver=x",
            "Volume.1.DiskVolume.DiskId=d-1",
            "Container.1.LivenessProbe.TcpSocket.Host=10.0.0.1",
            "InitContainer.1.ReadinessProbe.Exec.Command.1=true",
            "InitContainer.1.LifecyclePreStopHandlerHttpGetPath=/",
            "Container.1.LifecyclePreStopHandlerHttpGetHttpHeaders.1.Name=a",
            "Container.1.Tty=true",
            "EipInstanceId=eip-1",
            "EipBandwidth=5",
            "Container.1.Gpu=1",
            "HostSecurityContext.Sysctl.1.Name=kernel.sem",
            "Container.1.SecurityContextPrivileged=true",
        ] {
            let e = check(q).expect_err(q);
            let name = q.split('=').next().unwrap();
            assert!(e.message.contains(name), "{q}: {}", e.message);
        }
    }

    /// Every rule names a parameter of ECI's table once.
    #[test]
    fn rules_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for (n, _) in GROUP {
            assert!(seen.insert(*n), "{n} twice");
        }
        let mut seen = std::collections::HashSet::new();
        for (n, _) in CONTAINER.iter().chain(APP_CONTAINER) {
            assert!(seen.insert(*n), "{n} twice");
        }
    }
}
