//! The create form: image, size (the offered sizes with their price per hour, as
//! DescribeContainerGroupPrice prices them), command, environment, published ports, volumes
//! (`volumes.rs`), restart policy, image cache, spot. The form becomes CreateContainerGroup's
//! parameters; the API's validation is the only one, and its message is shown next to the
//! form. The equivalent `berth run` command and Python SDK snippet are shown for what was
//! entered.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use berth_eci::response::DescribeImageCachesResponse;
use berth_eci::{Action, ApiError};
use maud::{html, Markup};

use super::num;
use super::volumes::{self, Slots};
use crate::api::{call, call_as, kv};
use crate::auth::{signed, Signed};
use crate::page::{csrf_field, error_box, html_response, layout};
use crate::Console;

/// What the form holds.
#[derive(Clone, Debug, Default)]
pub struct CreateForm {
    pub csrf: Option<String>,
    pub name: String,
    pub image: String,
    /// Command and arguments, one a line.
    pub command: String,
    /// `CPU/MEMORY`, e.g. `0.25/0.5`.
    pub size: String,
    /// `KEY=VALUE` lines.
    pub env: String,
    /// `[HOSTPORT:]PORT[/udp]` lines, as `berth run -p`.
    pub ports: String,
    /// `NAME:/path[:ro]` lines, as `berth run -v`: emptyDir volumes on the group's storage.
    pub volumes: String,
    pub restart: String,
    /// `""` (none), `auto`, or an image cache id.
    pub cache: String,
    pub spot: Option<String>,
    pub plain_http: Option<String>,
    /// `preview` only shows the command and snippet.
    pub action: String,
    /// The volumes of other types, and their mounts (`volumes.rs`).
    pub volume_slots: Slots,
}

fn lines(s: &str) -> impl Iterator<Item = &str> {
    s.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// A published port line: (host port, port, protocol), each as written (the API checks them).
fn port(line: &str) -> (Option<&str>, &str, &str) {
    let (rest, proto) = match line.rsplit_once('/') {
        Some((r, p)) => (r, p),
        None => (line, "tcp"),
    };
    match rest.split_once(':') {
        Some((h, p)) => (Some(h), p, proto),
        None => (None, rest, proto),
    }
}

/// A volume line: (name, mount path, read-only), each as written (the API checks them).
fn volume(line: &str) -> (&str, &str, bool) {
    let (name, rest) = line.split_once(':').unwrap_or((line, ""));
    match rest.rsplit_once(':') {
        Some((path, "ro")) => (name, path, true),
        Some((path, "rw")) => (name, path, false),
        _ => (name, rest, false),
    }
}

/// The registry host of an image reference, when it names one.
fn registry_host(image: &str) -> Option<&str> {
    let (first, _) = image.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

fn plain_http(f: &CreateForm) -> Option<&str> {
    let host = registry_host(f.image.trim())?;
    let local =
        host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]");
    (local || f.plain_http.is_some()).then_some(host)
}

impl CreateForm {
    /// The form's fields as posted; a field the form does not have is refused with its name.
    pub fn from_fields(fields: Vec<(String, String)>) -> Result<Self, String> {
        let mut f = Self::default();
        for (k, v) in fields {
            match k.as_str() {
                "csrf" => f.csrf = Some(v),
                "name" => f.name = v,
                "image" => f.image = v,
                "command" => f.command = v,
                "size" => f.size = v,
                "env" => f.env = v,
                "ports" => f.ports = v,
                "volumes" => f.volumes = v,
                "restart" => f.restart = v,
                "cache" => f.cache = v,
                "spot" => f.spot = Some(v),
                "plain_http" => f.plain_http = Some(v),
                "action" => f.action = v,
                _ => {
                    if !volumes::take(&mut f.volume_slots, &k, v) {
                        return Err(k);
                    }
                }
            }
        }
        Ok(f)
    }

    fn size(&self) -> Option<(&str, &str)> {
        self.size.split_once('/')
    }

    fn restart_policy(&self) -> &str {
        if self.restart.is_empty() {
            "Always"
        } else {
            &self.restart
        }
    }

    /// CreateContainerGroup's parameters, as `berth run` would send them.
    pub fn params(&self, region: &str) -> Vec<(String, String)> {
        let name = self.name.trim();
        let mut p = vec![
            kv("RegionId", region),
            kv("ContainerGroupName", name),
            kv("RestartPolicy", self.restart_policy()),
            kv("Container.1.Name", name),
            kv("Container.1.Image", self.image.trim()),
        ];
        if let Some((cpu, mem)) = self.size() {
            p.push(kv("Cpu", cpu));
            p.push(kv("Memory", mem));
        }
        for (i, l) in lines(&self.command).enumerate() {
            p.push(kv(format!("Container.1.Command.{}", i + 1), l));
        }
        for (i, l) in lines(&self.env).enumerate() {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            p.push(kv(format!("Container.1.EnvironmentVar.{}.Key", i + 1), k));
            p.push(kv(format!("Container.1.EnvironmentVar.{}.Value", i + 1), v));
        }
        let mut published = false;
        for (i, l) in lines(&self.ports).enumerate() {
            let (host, port, proto) = port(l);
            let k = format!("Container.1.Port.{}", i + 1);
            p.push(kv(format!("{k}.Port"), port));
            p.push(kv(format!("{k}.Protocol"), proto.to_ascii_uppercase()));
            if let Some(h) = host {
                p.push(kv(format!("{k}.HostPort"), h));
            }
            published = true;
        }
        if published {
            p.push(kv("AutoCreateEip", "true"));
        }
        for (i, l) in lines(&self.volumes).enumerate() {
            let (name, path, ro) = volume(l);
            let (v, m) = (
                format!("Volume.{}", i + 1),
                format!("Container.1.VolumeMount.{}", i + 1),
            );
            p.push(kv(format!("{v}.Name"), name));
            p.push(kv(format!("{v}.Type"), "EmptyDirVolume"));
            p.push(kv(format!("{m}.Name"), name));
            p.push(kv(format!("{m}.MountPath"), path));
            if ro {
                p.push(kv(format!("{m}.ReadOnly"), "true"));
            }
        }
        let lines_given = lines(&self.volumes).count();
        p.extend(volumes::params(
            &self.volume_slots,
            lines_given,
            lines_given,
        ));
        match self.cache.as_str() {
            "" => {}
            "auto" => p.push(kv("AutoMatchImageCache", "true")),
            id => p.push(kv("ImageSnapshotId", id)),
        }
        if self.spot.is_some() {
            p.push(kv("SpotStrategy", "SpotAsPriceGo"));
        }
        if let Some(h) = plain_http(self) {
            p.push(kv("PlainHttpRegistry", h));
        }
        p
    }

    /// The `berth run` command for this form.
    pub fn berth_run(&self) -> String {
        let mut w: Vec<String> = vec!["berth".into(), "run".into(), sh(self.image.trim())];
        if !self.name.trim().is_empty() {
            w.extend(["--name".into(), sh(self.name.trim())]);
        }
        if let Some((cpu, mem)) = self.size() {
            w.extend(["--cpu".into(), sh(cpu), "--memory".into(), sh(mem)]);
        }
        for l in lines(&self.env) {
            w.extend(["-e".into(), sh(l)]);
        }
        for l in lines(&self.ports) {
            w.extend(["-p".into(), sh(l)]);
        }
        for l in lines(&self.volumes) {
            w.extend(["-v".into(), sh(l)]);
        }
        if self.restart_policy() != "Always" {
            w.extend(["--restart".into(), sh(self.restart_policy())]);
        }
        if self.plain_http.is_some() {
            w.push("--plain-http".into());
        }
        let cmd: Vec<String> = lines(&self.command).map(sh).collect();
        if !cmd.is_empty() {
            w.push("--".into());
            w.extend(cmd);
        }
        let mut out = w.join(" ");
        let mut missing = Vec::new();
        if self.spot.is_some() {
            missing.push("spot");
        }
        if !self.cache.is_empty() {
            missing.push("image cache");
        }
        if volumes::any(&self.volume_slots) {
            missing.push("the volumes of the volume fieldsets");
        }
        if !missing.is_empty() {
            out.push_str(&format!(
                "\n# berth run has no flag for: {} (the SDK snippet sets it)",
                missing.join(", ")
            ));
        }
        out
    }

    /// The Python SDK snippet for this form.
    pub fn python(&self, region: &str, endpoint: &str) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut c = vec![
            format!("name={}", q(self.name.trim())),
            format!("image={}", q(self.image.trim())),
        ];
        let cmd: Vec<String> = lines(&self.command).map(q).collect();
        if !cmd.is_empty() {
            c.push(format!("command=[{}]", cmd.join(", ")));
        }
        let env: Vec<String> = lines(&self.env)
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                format!(
                    "models.CreateContainerGroupRequestContainerEnvironmentVar(key={}, value={})",
                    q(k),
                    q(v)
                )
            })
            .collect();
        if !env.is_empty() {
            c.push(format!("environment_var=[{}]", env.join(", ")));
        }
        let ports: Vec<String> = lines(&self.ports)
            .map(|l| {
                let (_, p, proto) = port(l);
                format!(
                    "models.CreateContainerGroupRequestContainerPort(port={}, protocol={})",
                    p,
                    q(&proto.to_ascii_uppercase())
                )
            })
            .collect();
        if !ports.is_empty() {
            c.push(format!("port=[{}]", ports.join(", ")));
        }
        let vols: Vec<(&str, &str, bool)> = lines(&self.volumes).map(volume).collect();
        let (slot_vols, slot_mounts) = volumes::python(&self.volume_slots);
        if !vols.is_empty() || !slot_mounts.is_empty() {
            let mut mounts: Vec<String> = vols
                .iter()
                .map(|(n, path, ro)| {
                    format!(
                        "models.CreateContainerGroupRequestContainerVolumeMount(name={}, mount_path={}, read_only={})",
                        q(n),
                        q(path),
                        if *ro { "True" } else { "False" }
                    )
                })
                .collect();
            mounts.extend(slot_mounts);
            c.push(format!("volume_mount=[{}]", mounts.join(", ")));
        }
        let mut g = vec![
            format!("region_id={}", q(region)),
            format!("container_group_name={}", q(self.name.trim())),
            format!("restart_policy={}", q(self.restart_policy())),
        ];
        if let Some((cpu, mem)) = self.size() {
            g.push(format!("cpu={cpu}, memory={mem}"));
        }
        if !ports.is_empty() {
            g.push("auto_create_eip=True".into());
        }
        if !vols.is_empty() || !slot_vols.is_empty() {
            let mut v: Vec<String> = vols
                .iter()
                .map(|(n, _, _)| {
                    format!(
                        "models.CreateContainerGroupRequestVolume(name={}, type=\"EmptyDirVolume\")",
                        q(n)
                    )
                })
                .collect();
            v.extend(slot_vols);
            g.push(format!("volume=[{}]", v.join(", ")));
        }
        match self.cache.as_str() {
            "" => {}
            "auto" => g.push("auto_match_image_cache=True".into()),
            id => g.push(format!("image_snapshot_id={}", q(id))),
        }
        if self.spot.is_some() {
            g.push("spot_strategy=\"SpotAsPriceGo\"".into());
        }
        format!(
            "from alibabacloud_eci20180808 import models\n\
             from alibabacloud_eci20180808.client import Client\n\
             from alibabacloud_tea_openapi.models import Config\n\n\
             client = Client(Config(access_key_id=..., access_key_secret=...,\n\
             \x20                      endpoint={}, region_id={}))\n\
             request = models.CreateContainerGroupRequest(\n    {},\n    container=[models.CreateContainerGroupRequestContainer(\n        {},\n    )],\n)\n\
             print(client.create_container_group(request).body.container_group_id)\n",
            q(endpoint),
            q(region),
            g.join(",\n    "),
            c.join(",\n        ")
        )
    }
}

/// `s` quoted for a POSIX shell when it needs to be.
fn sh(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The region this berth serves.
async fn region(c: &Console, who: &Signed) -> Result<String, ApiError> {
    let v = call(c, who, Action::DescribeRegions, vec![]).await?;
    Ok(v["Regions"]["Region"][0]["RegionId"]
        .as_str()
        .or_else(|| v["Regions"][0]["RegionId"].as_str())
        .unwrap_or_default()
        .to_string())
}

/// A price per second (DescribeContainerGroupPrice's `TradePrice`) per hour, exactly.
fn per_hour(second: berth_core::price::Decimal) -> String {
    use berth_core::price::{Decimal, SECONDS_PER_HOUR};
    (second * Decimal::from(SECONDS_PER_HOUR))
        .normalize()
        .to_string()
}

/// Each offered size with its price per hour, as DescribeContainerGroupPrice answers it
/// (`berth_server::size_prices`: one read of the price catalog for the whole table); the
/// sizes alone when the region has no prices.
fn sizes(c: &Console, region: &str) -> Vec<(String, String)> {
    let priced = berth_server::size_prices(&c.state, region).ok();
    let plain = || {
        berth_core::size::offered()
            .map(|s| (s, None))
            .collect::<Vec<_>>()
    };
    let table = match priced {
        Some(t) => t.into_iter().map(|(s, q)| (s, Some(q))).collect(),
        None => plain(),
    };
    table
        .into_iter()
        .map(|(s, q)| {
            let (cpu, mem) = (num(s.cpu), num(s.memory));
            let price = q
                .map(|q| format!(" — {} {}/hour", per_hour(q.second), q.currency))
                .unwrap_or_default();
            (
                format!("{cpu}/{mem}"),
                format!("{cpu} vCPU, {mem} GiB{price}"),
            )
        })
        .collect()
}

async fn render(
    c: &Console,
    who: &Signed,
    f: &CreateForm,
    error: Option<&ApiError>,
    preview: bool,
) -> Markup {
    let region = region(c, who).await.unwrap_or_default();
    let sizes = sizes(c, &region);
    let caches: Vec<(String, String)> = call_as::<DescribeImageCachesResponse>(
        c,
        who,
        Action::DescribeImageCaches,
        vec![kv("RegionId", &region)],
    )
    .await
    .map(|r| {
        r.image_caches
            .into_iter()
            .map(|ic| {
                (
                    ic.image_cache_id,
                    format!("{} ({})", ic.image_cache_name, ic.status),
                )
            })
            .collect()
    })
    .unwrap_or_default();
    let selected_size = if f.size.is_empty() {
        "0.25/0.5"
    } else {
        f.size.as_str()
    };
    let restart = f.restart_policy().to_string();
    let endpoint = who.host.clone();
    let offered = volumes::Offered::of(&c.state.volume_policy());
    layout(
        "Create a container group",
        Some(who),
        html! {
            @if let Some(e) = error { (error_box(e)) }
            form.card.create method="post" action="/console/groups" {
                (csrf_field(who))
                label for="name" { "Name" }
                input id="name" name="name" required value=(f.name) maxlength="128" aria-describedby="name-help";
                small id="name-help" { "Lower-case letters, digits and hyphens; also the container's name." }
                label for="image" { "Image" }
                input id="image" name="image" required value=(f.image) placeholder="registry.example/app:1.0";
                label for="size" { "Size (price per hour)" }
                select id="size" name="size" {
                    @for (v, label) in &sizes {
                        option value=(v) selected[v == selected_size] { (label) }
                    }
                }
                label for="command" { "Command and arguments (one per line)" }
                textarea id="command" name="command" rows="3" { (f.command) }
                label for="env" { "Environment (KEY=VALUE, one per line)" }
                textarea id="env" name="env" rows="3" { (f.env) }
                label for="ports" { "Published ports ([HOSTPORT:]PORT[/udp], one per line)" }
                textarea id="ports" name="ports" rows="2" { (f.ports) }
                label for="volumes" { "Volumes (NAME:/path[:ro], one per line; on the group's storage)" }
                textarea id="volumes" name="volumes" rows="2" { (f.volumes) }
                details.volumes open[volumes::any(&f.volume_slots)] {
                    summary { "More volumes: config files, memory, sub-paths"
                        @if offered.nfs { ", NFS" } @if offered.host_path { ", host paths" } }
                    small { "\"Show the command\" adds an empty volume and file row when these are full." }
                    (volumes::render(&f.volume_slots, offered))
                }
                label for="restart" { "Restart policy" }
                select id="restart" name="restart" {
                    @for p in ["Always", "OnFailure", "Never"] {
                        option value=(p) selected[restart == p] { (p) }
                    }
                }
                label for="cache" { "Image cache" }
                select id="cache" name="cache" {
                    option value="" selected[f.cache.is_empty()] { "None" }
                    option value="auto" selected[f.cache == "auto"] { "Match one automatically" }
                    @for (id, label) in &caches {
                        option value=(id) selected[&f.cache == id] { (label) }
                    }
                }
                div.check {
                    input id="spot" name="spot" type="checkbox" value="on" checked[f.spot.is_some()];
                    label for="spot" { "Spot (SpotAsPriceGo: cheaper, may be reclaimed)" }
                }
                div.check {
                    input id="plain_http" name="plain_http" type="checkbox" value="on" checked[f.plain_http.is_some()];
                    label for="plain_http" { "The registry speaks plain HTTP (automatic for 127.0.0.1 and localhost)" }
                }
                div.buttons {
                    button type="submit" name="action" value="create" { "Create" }
                    button.secondary type="submit" name="action" value="preview" { "Show the command" }
                }
            }
            @if preview || error.is_some() {
                section aria-labelledby="equiv-h" {
                    h2 id="equiv-h" { "The same, from a terminal or a program" }
                    h3 { code { "berth run" } }
                    pre.snippet id="berth-run" { (f.berth_run()) }
                    h3 { "Python SDK" }
                    pre.snippet id="sdk" { (f.python(&region, &endpoint)) }
                }
            }
        },
    )
}

/// `GET /console/groups/new`.
pub async fn form(State(c): State<Console>, headers: HeaderMap) -> Response {
    let who = match signed(&c, &headers).await {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let f = CreateForm::default();
    html_response(StatusCode::OK, render(&c, &who, &f, None, false).await)
}

/// `POST /console/groups`: creates (or, with `action=preview`, shows the command).
pub async fn submit(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let (who, f) = match super::posted_form(&c, &headers, fields, CreateForm::from_fields).await {
        Ok(posted) => posted,
        Err(r) => return *r,
    };
    if f.action == "preview" {
        return html_response(StatusCode::OK, render(&c, &who, &f, None, true).await);
    }
    let region = match region(&c, &who).await {
        Ok(r) => r,
        Err(e) => {
            return html_response(
                StatusCode::BAD_REQUEST,
                render(&c, &who, &f, Some(&e), false).await,
            )
        }
    };
    match call(&c, &who, Action::CreateContainerGroup, f.params(&region)).await {
        Ok(v) => {
            let id = v["ContainerGroupId"].as_str().unwrap_or_default();
            Redirect::to(&format!("/console/groups/{}", super::enc(id))).into_response()
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            html_response(status, render(&c, &who, &f, Some(&e), false).await)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> CreateForm {
        CreateForm {
            name: "web".into(),
            image: "127.0.0.1:5000/busybox:latest".into(),
            command: "sh\n-c\necho it's up; sleep 3600\n".into(),
            size: "0.5/1".into(),
            env: "A=B\n\nC=d e\n".into(),
            ports: "8080:80\n53/udp\n".into(),
            volumes: "data:/data\ncache:/var/cache:ro\n".into(),
            restart: "Never".into(),
            cache: "auto".into(),
            spot: Some("on".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_posted_fields_fill_the_form_and_its_volume_slots() {
        let f = CreateForm::from_fields(vec![
            kv("csrf", "t"),
            kv("name", "web"),
            kv("image", "busybox"),
            kv("volumes", "data:/data"),
            kv("vol.1.name", "conf"),
            kv("vol.1.kind", "config"),
            kv("vol.1.file.1.path", "a.conf"),
            kv("vol.1.file.1.content", "x\n"),
            kv("vol.1.mount_path", "/etc/a"),
        ])
        .unwrap();
        let p = f.params("local");
        for want in [
            ("Volume.1.Name", "data"),
            ("Container.1.VolumeMount.1.MountPath", "/data"),
            ("Volume.2.Name", "conf"),
            ("Volume.2.Type", "ConfigFileVolume"),
            (
                "Volume.2.ConfigFileVolume.ConfigFileToPath.1.Content",
                "eAo=",
            ),
            ("Container.1.VolumeMount.2.Name", "conf"),
            ("Container.1.VolumeMount.2.MountPath", "/etc/a"),
        ] {
            assert!(p.contains(&kv(want.0, want.1)), "{want:?} in {p:?}");
        }
        assert!(f
            .berth_run()
            .contains("no flag for: the volumes of the volume fieldsets"));
        assert_eq!(
            CreateForm::from_fields(vec![kv("Volume.1.Type", "FlexVolume")]).unwrap_err(),
            "Volume.1.Type"
        );
    }

    #[test]
    fn prices_per_second_are_shown_per_hour_exactly() {
        use berth_core::price::Decimal;
        assert_eq!(
            per_hour(Decimal::from_str_exact("0.000015315").unwrap()),
            "0.055134"
        );
        assert_eq!(
            per_hour(Decimal::from_str_exact("0.00012252").unwrap()),
            "0.441072"
        );
    }

    #[test]
    fn the_form_becomes_the_apis_parameters() {
        let p = form().params("local");
        for want in [
            ("RegionId", "local"),
            ("ContainerGroupName", "web"),
            ("Container.1.Name", "web"),
            ("Cpu", "0.5"),
            ("Memory", "1"),
            ("RestartPolicy", "Never"),
            ("Container.1.Command.3", "echo it's up; sleep 3600"),
            ("Container.1.EnvironmentVar.2.Key", "C"),
            ("Container.1.EnvironmentVar.2.Value", "d e"),
            ("Container.1.Port.1.Port", "80"),
            ("Container.1.Port.1.HostPort", "8080"),
            ("Container.1.Port.2.Protocol", "UDP"),
            ("AutoCreateEip", "true"),
            ("AutoMatchImageCache", "true"),
            ("SpotStrategy", "SpotAsPriceGo"),
            ("PlainHttpRegistry", "127.0.0.1:5000"),
            ("Volume.1.Name", "data"),
            ("Volume.1.Type", "EmptyDirVolume"),
            ("Container.1.VolumeMount.1.MountPath", "/data"),
            ("Container.1.VolumeMount.2.Name", "cache"),
            ("Container.1.VolumeMount.2.MountPath", "/var/cache"),
            ("Container.1.VolumeMount.2.ReadOnly", "true"),
        ] {
            assert!(p.contains(&kv(want.0, want.1)), "{want:?} in {p:?}");
        }
    }

    #[test]
    fn the_equivalent_command_quotes_what_the_shell_would_split() {
        let run = form().berth_run();
        assert!(run.starts_with(
            "berth run 127.0.0.1:5000/busybox:latest --name web --cpu 0.5 --memory 1 -e A=B -e 'C=d e' -p 8080:80 -p 53/udp -v data:/data -v cache:/var/cache:ro --restart Never -- sh -c 'echo it'\\''s up; sleep 3600'"
        ), "{run}");
        assert!(run.contains("no flag for: spot, image cache"), "{run}");
        let py = form().python("local", "127.0.0.1:8080");
        assert!(
            py.contains("command=[\"sh\", \"-c\", \"echo it's up; sleep 3600\"]"),
            "{py}"
        );
        assert!(py.contains("auto_match_image_cache=True"), "{py}");
        assert!(
            py.contains("mount_path=\"/var/cache\", read_only=True"),
            "{py}"
        );
        assert!(
            py.contains("volume=[models.CreateContainerGroupRequestVolume(name=\"data\""),
            "{py}"
        );
        assert!(py.contains("spot_strategy=\"SpotAsPriceGo\""), "{py}");
    }
}
