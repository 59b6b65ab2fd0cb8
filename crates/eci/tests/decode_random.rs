//! Random parameter maps thrown at the decoder of every action: it never panics, and answers
//! either a decoded request or an ECI-shaped 4xx error (a status, a code, a message). Seeded,
//! so a failure repeats; `BERTH_DECODE_SEED` and `BERTH_DECODE_CASES` change the run.

use std::panic::{catch_unwind, AssertUnwindSafe};

use berth_eci::request::decode;
use berth_eci::{Action, Params};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Parameter names the decoders read, alone or as the children of a list item.
const NAMES: &[&str] = &[
    "RegionId",
    "ZoneId",
    "ContainerGroupId",
    "ContainerGroupIds",
    "ContainerGroupName",
    "ContainerName",
    "ClientToken",
    "RestartPolicy",
    "Cpu",
    "Memory",
    "Limit",
    "NextToken",
    "Status",
    "Tag",
    "SinceSecond",
    "SinceSeconds",
    "Tail",
    "LimitBytes",
    "Timestamps",
    "LastTime",
    "StartTime",
    "EndTime",
    "Period",
    "EventSource",
    "WithEvent",
    "HostName",
    "TerminationGracePeriodSeconds",
    "ActiveDeadlineSeconds",
    "ImageSnapshotId",
    "AutoMatchImageCache",
    "ImageCacheName",
    "ImageCacheId",
    "ImageCacheSize",
    "RetentionDays",
    "EliminationStrategy",
    "Image",
    "ImageRegistryCredential",
    "PlainHttpRegistry",
    "InsecureRegistry",
    "Command",
    "Sync",
    "TTY",
    "Stdin",
    "DryRun",
    "MatchImage",
    "ImageFullMatch",
    "MetricType",
    "Container",
    "InitContainer",
    "Name",
];

/// Children of list items (`Container.N.<child>`, `Tag.N.<child>`…).
const CHILDREN: &[&str] = &[
    "Name",
    "Image",
    "Cpu",
    "Memory",
    "Command.1",
    "Command.2",
    "Arg.1",
    "WorkingDir",
    "ImagePullPolicy",
    "Port.1.Port",
    "Port.1.Protocol",
    "Port.2.Port",
    "Tty",
    "Stdin",
    "EnvironmentVar.1.Key",
    "EnvironmentVar.1.Value",
    "SecurityContext.RunAsUser",
    "SecurityContext.ReadOnlyRootFilesystem",
    "SecurityContext.Capability.Add.1",
    "SecurityContextRunAsGroup",
    "Key",
    "Value",
    "Server",
    "UserName",
    "Password",
    "VolumeMount.1.Name",
    "VolumeMount.1.MountPath",
];

/// Values at and past the edges of what a parameter means.
const VALUES: &[&str] = &[
    "",
    " ",
    "None",
    "0",
    "1",
    "-1",
    "2",
    "0.5",
    "1.0",
    "15",
    "600",
    "20",
    "200",
    "2000",
    "2001",
    "65535",
    "65536",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "1e308",
    "-1e308",
    "NaN",
    "inf",
    "-inf",
    "1e-320",
    "true",
    "false",
    "True",
    "FALSE",
    "Always",
    "Never",
    "OnFailure",
    "Running",
    "LRU",
    "EciService",
    "K8sAgent",
    "TCP",
    "UDP",
    "2024-01-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59+23:59",
    "0000-01-01T00:00:00-23:59",
    "1970-01-01T00:00:00.999999999Z",
    "[]",
    "[\"eci-1\"]",
    "[\"a\",\"b\",1]",
    "[",
    "{}",
    "null",
    "eci-0123456789abcdef01234",
    "imc-0123456789abcdef01234",
    "busybox",
    "a\u{0}b",
    "é",
    "\u{1F600}",
    "..",
    "/",
    "a/b:c@d",
    "%",
];

fn random_value(rng: &mut StdRng) -> String {
    match rng.gen_range(0..10) {
        0 => "x".repeat(rng.gen_range(60..300)),
        1 => rng.gen::<u64>().to_string(),
        2 => format!("{}", rng.gen::<f64>() * 10f64.powi(rng.gen_range(-5..40))),
        3 => (0..rng.gen_range(0..12))
            .map(|_| char::from_u32(rng.gen_range(0..0x2FFF)).unwrap_or('?'))
            .collect(),
        _ => VALUES[rng.gen_range(0..VALUES.len())].to_string(),
    }
}

fn random_index(rng: &mut StdRng) -> String {
    match rng.gen_range(0..12) {
        0 => "0".into(),
        1 => "01".into(),
        2 => "x".into(),
        3 => "4294967296".into(),
        4 => rng.gen::<u32>().to_string(),
        _ => rng.gen_range(1..4).to_string(),
    }
}

fn random_name(rng: &mut StdRng) -> String {
    let base = NAMES[rng.gen_range(0..NAMES.len())];
    match rng.gen_range(0..3) {
        0 => base.to_string(),
        1 => format!("{base}.{}", random_index(rng)),
        _ => format!(
            "{base}.{}.{}",
            random_index(rng),
            CHILDREN[rng.gen_range(0..CHILDREN.len())]
        ),
    }
}

fn random_params(rng: &mut StdRng) -> Params {
    let n = rng.gen_range(0..24);
    Params::from_pairs((0..n).map(|_| (random_name(rng), random_value(rng))))
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_parameters_decode_or_answer_an_eci_error() {
    let seed = env_u64("BERTH_DECODE_SEED", 0x5eed_0012);
    let cases = env_u64("BERTH_DECODE_CASES", 3000);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut decoded = 0;
    let mut refused = 0;
    for case in 0..cases {
        for action in Action::ALL {
            let params = random_params(&mut rng);
            let result = catch_unwind(AssertUnwindSafe(|| decode(action, &params)));
            match result {
                Err(_) => panic!(
                    "decoding {} panicked (seed {seed}, case {case}) on {params:?}",
                    action.as_str()
                ),
                Ok(Ok(_)) => decoded += 1,
                Ok(Err(e)) => {
                    assert!(
                        (400..500).contains(&e.status),
                        "{}: status {} for {params:?}",
                        action.as_str(),
                        e.status
                    );
                    assert!(!e.code.is_empty() && !e.message.is_empty(), "{e:?}");
                    assert!(
                        e.code
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '.'),
                        "{e:?}"
                    );
                    refused += 1;
                }
            }
        }
    }
    // Both outcomes are reached, so the maps are neither all nonsense nor all harmless.
    assert!(
        decoded > 0 && refused > 0,
        "decoded {decoded}, refused {refused}"
    );
}

#[test]
fn out_of_range_numbers_are_invalid_parameters() {
    let cases: &[(Action, &[(&str, &str)])] = &[
        (
            Action::DescribeContainerGroupStatus,
            &[("SinceSecond", "18446744073709551615")],
        ),
        (
            Action::DescribeContainerGroupEvents,
            &[("SinceSecond", "9223372036854775807")],
        ),
        (
            Action::DescribeContainerLog,
            &[
                ("ContainerGroupId", "eci-1"),
                ("ContainerName", "c"),
                ("SinceSeconds", "9223372036854775807"),
            ],
        ),
        (
            Action::DescribeContainerLog,
            &[
                ("ContainerGroupId", "eci-1"),
                ("ContainerName", "c"),
                ("LimitBytes", "0"),
            ],
        ),
        (Action::DescribeContainerGroups, &[("Limit", "-1")]),
        (
            Action::CreateContainerGroup,
            &[
                ("ContainerGroupName", "g"),
                ("Container.1.Name", "c"),
                ("Container.1.Image", "busybox"),
                ("Container.1.Cpu", "1e300"),
            ],
        ),
    ];
    for (action, pairs) in cases {
        let params = Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let e = decode(*action, &params).expect_err(&format!("{pairs:?}"));
        assert_eq!(e.status, 400, "{e:?}");
        assert!(e.code.starts_with("InvalidParameter"), "{e:?}");
    }
}
