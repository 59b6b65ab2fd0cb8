//! The flags of `berth run` beyond image, size and command, in Docker's spelling where one
//! exists (`--env-file`, `-u/--user`, `--read-only`, `-w/--workdir`, `-v NAME:/path[:ro]`,
//! `--tmpfs /path[:size=N]`, `--cap-add`, `--hostname`, `--health-cmd` and its
//! `--health-interval/-timeout/-retries/-start-period`), turned into the container's
//! CreateContainerGroup parameters. Anything the API would refuse is refused here first,
//! with the flag's name.

use std::path::PathBuf;

use anyhow::{bail, Context};

#[derive(clap::Args, Default)]
pub struct RunExtras {
    /// Read environment variables from a file of KEY=VALUE lines (# comments and blank lines
    /// skipped; a bare KEY takes this shell's value); repeatable, before -e.
    #[arg(long = "env-file")]
    env_files: Vec<PathBuf>,
    /// Run as UID[:GID] (numbers: the API takes no names).
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Mount the container's root filesystem read-only.
    #[arg(long)]
    read_only: bool,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    /// An emptyDir volume NAME mounted at /path (on the group's temporary storage), `:ro`
    /// for read-only; repeatable.
    #[arg(short = 'v', long = "volume", value_name = "NAME:/path[:ro]")]
    volumes: Vec<String>,
    /// A memory-backed volume at /path, `:size=` in Kubernetes quantities (e.g. 64Mi);
    /// repeatable.
    #[arg(long = "tmpfs", value_name = "/path[:size=N]")]
    tmpfs: Vec<String>,
    /// Add a capability (e.g. NET_ADMIN), as the operator allows; repeatable.
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    /// Host name of the group (default: its name).
    #[arg(long)]
    hostname: Option<String>,
    /// GiB of the group's temporary storage (default 30).
    #[arg(long)]
    storage: Option<u32>,
    /// Health check run in the container with `sh -c` (its readiness probe: an unhealthy
    /// container is not Ready, as Docker does not restart it either).
    #[arg(long)]
    health_cmd: Option<String>,
    /// Time between health checks (e.g. 30s, 1m).
    #[arg(long, requires = "health_cmd")]
    health_interval: Option<String>,
    /// Time a health check may take.
    #[arg(long, requires = "health_cmd")]
    health_timeout: Option<String>,
    /// Failures in a row before the container is unhealthy.
    #[arg(long, requires = "health_cmd")]
    health_retries: Option<u32>,
    /// Time after the start before the first check.
    #[arg(long, requires = "health_cmd")]
    health_start_period: Option<String>,
}

impl RunExtras {
    /// The `-e` variables after the env files'.
    pub fn env(&self, flags: &[String]) -> anyhow::Result<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: String| match out.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k.to_string(), v)),
        };
        for f in &self.env_files {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("--env-file {}", f.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim_start();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                match line.split_once('=') {
                    Some((k, v)) if valid_key(k) => set(k, v.to_string()),
                    None if valid_key(line.trim_end()) => {
                        let k = line.trim_end();
                        if let Ok(v) = std::env::var(k) {
                            set(k, v);
                        }
                    }
                    _ => bail!(
                        "--env-file {} line {}: not KEY=VALUE: {line:?}",
                        f.display(),
                        n + 1
                    ),
                }
            }
        }
        for e in flags {
            let Some((k, v)) = e.split_once('=') else {
                bail!("environment variable {e:?} is not KEY=VALUE")
            };
            set(k, v.to_string());
        }
        Ok(out)
    }

    /// The container's and the group's parameters of these flags.
    pub fn params(&self, p: &mut Vec<(String, String)>) -> anyhow::Result<()> {
        let c = "Container.1";
        let mut push = |k: String, v: String| p.push((k, v));
        if let Some(u) = &self.user {
            let (uid, gid) = match u.split_once(':') {
                Some((u, g)) => (u, Some(g)),
                None => (u.as_str(), None),
            };
            let num = |s: &str| {
                s.parse::<u32>()
                    .with_context(|| format!("--user {u:?}: {s:?} is not a number"))
            };
            push(
                format!("{c}.SecurityContext.RunAsUser"),
                num(uid)?.to_string(),
            );
            if let Some(g) = gid {
                push(
                    format!("{c}.SecurityContextRunAsGroup"),
                    num(g)?.to_string(),
                );
            }
        }
        if self.read_only {
            push(
                format!("{c}.SecurityContext.ReadOnlyRootFilesystem"),
                "true".into(),
            );
        }
        if let Some(w) = &self.workdir {
            push(format!("{c}.WorkingDir"), w.clone());
        }
        for (i, cap) in self.cap_add.iter().enumerate() {
            push(
                format!("{c}.SecurityContext.Capability.Add.{}", i + 1),
                cap.to_ascii_uppercase(),
            );
        }
        if let Some(h) = &self.hostname {
            push("HostName".into(), h.clone());
        }
        if let Some(s) = self.storage {
            push("EphemeralStorage".into(), s.to_string());
        }
        if let Some(cmd) = &self.health_cmd {
            let r = format!("{c}.ReadinessProbe");
            push(format!("{r}.Exec.Command.1"), "sh".into());
            push(format!("{r}.Exec.Command.2"), "-c".into());
            push(format!("{r}.Exec.Command.3"), cmd.clone());
            for (flag, value, field) in [
                ("--health-interval", &self.health_interval, "PeriodSeconds"),
                ("--health-timeout", &self.health_timeout, "TimeoutSeconds"),
                (
                    "--health-start-period",
                    &self.health_start_period,
                    "InitialDelaySeconds",
                ),
            ] {
                if let Some(v) = value {
                    let secs =
                        crate::follow::parse_duration(v).with_context(|| flag.to_string())?;
                    push(format!("{r}.{field}"), secs.to_string());
                }
            }
            if let Some(n) = self.health_retries {
                push(format!("{r}.FailureThreshold"), n.to_string());
            }
        }
        let mut n = 0;
        let mut volume = |name: &str, path: &str, ro: bool, size: Option<&str>| {
            n += 1;
            let v = format!("Volume.{n}");
            let m = format!("{c}.VolumeMount.{n}");
            let mut out = vec![
                (format!("{v}.Name"), name.to_string()),
                (format!("{v}.Type"), "EmptyDirVolume".to_string()),
                (format!("{m}.Name"), name.to_string()),
                (format!("{m}.MountPath"), path.to_string()),
            ];
            if ro {
                out.push((format!("{m}.ReadOnly"), "true".into()));
            }
            if let Some(size) = size {
                out.push((format!("{v}.EmptyDirVolume.Medium"), "Memory".into()));
                if !size.is_empty() {
                    out.push((format!("{v}.EmptyDirVolume.SizeLimit"), size.into()));
                }
            }
            out
        };
        let mut vols = Vec::new();
        for spec in &self.volumes {
            let parts: Vec<&str> = spec.split(':').collect();
            let (name, path, ro) = match parts[..] {
                [name, path] => (name, path, false),
                [name, path, "ro"] => (name, path, true),
                [name, path, "rw"] => (name, path, false),
                _ => bail!("-v {spec:?} is not NAME:/path[:ro] (volumes live on the group's storage; host paths are the operator's)"),
            };
            if name.starts_with('/') || !path.starts_with('/') {
                bail!("-v {spec:?}: NAME:/path, where NAME names a volume of the group and /path is inside the container");
            }
            vols.extend(volume(name, path, ro, None));
        }
        for (i, spec) in self.tmpfs.iter().enumerate() {
            let (path, size) = match spec.split_once(':') {
                Some((path, opt)) => match opt.strip_prefix("size=") {
                    Some(size) => (path, size),
                    None => bail!("--tmpfs {spec:?}: the only option is size=N"),
                },
                None => (spec.as_str(), ""),
            };
            if !path.starts_with('/') {
                bail!("--tmpfs {spec:?}: the path must be absolute");
            }
            vols.extend(volume(&format!("tmpfs-{}", i + 1), path, false, Some(size)));
        }
        p.extend(vols);
        Ok(())
    }
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && !k.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_come_first_and_e_overrides() {
        let dir = std::env::temp_dir().join(format!("berth-envfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("env");
        std::fs::write(&f, "# c\nA=1\n\nB=x=y\nC=3\n").unwrap();
        let x = RunExtras {
            env_files: vec![f.clone()],
            ..Default::default()
        };
        let env = x.env(&["C=4".into(), "D=5".into()]).unwrap();
        assert_eq!(
            env,
            [("A", "1"), ("B", "x=y"), ("C", "4"), ("D", "5")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        std::fs::write(&f, "not a line\n").unwrap();
        assert!(x.env(&[]).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn flags_become_parameters() {
        let x = RunExtras {
            user: Some("1000:2000".into()),
            read_only: true,
            volumes: vec!["data:/data:ro".into()],
            tmpfs: vec!["/scratch:size=64Mi".into()],
            ..Default::default()
        };
        let mut p = Vec::new();
        x.params(&mut p).unwrap();
        let has = |k: &str, v: &str| p.iter().any(|(a, b)| a == k && b == v);
        assert!(has("Container.1.SecurityContext.RunAsUser", "1000"));
        assert!(has("Container.1.SecurityContextRunAsGroup", "2000"));
        assert!(has(
            "Container.1.SecurityContext.ReadOnlyRootFilesystem",
            "true"
        ));
        assert!(has("Volume.1.Name", "data") && has("Container.1.VolumeMount.1.ReadOnly", "true"));
        assert!(has("Volume.2.EmptyDirVolume.Medium", "Memory"));
        assert!(has("Volume.2.EmptyDirVolume.SizeLimit", "64Mi"));
        let x = RunExtras {
            health_cmd: Some("test -f /ok".into()),
            health_interval: Some("2m".into()),
            health_retries: Some(2),
            ..Default::default()
        };
        let mut p = Vec::new();
        x.params(&mut p).unwrap();
        let has = |k: &str, v: &str| p.iter().any(|(a, b)| a == k && b == v);
        assert!(has(
            "Container.1.ReadinessProbe.Exec.Command.3",
            "test -f /ok"
        ));
        assert!(has("Container.1.ReadinessProbe.PeriodSeconds", "120"));
        assert!(has("Container.1.ReadinessProbe.FailureThreshold", "2"));
        for bad in [
            RunExtras {
                user: Some("root".into()),
                ..Default::default()
            },
            RunExtras {
                volumes: vec!["/etc:/x".into()],
                ..Default::default()
            },
            RunExtras {
                tmpfs: vec!["x".into()],
                ..Default::default()
            },
        ] {
            assert!(bad.params(&mut Vec::new()).is_err());
        }
    }
}
