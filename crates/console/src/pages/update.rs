//! The update form of a group's page: a new size, restart policy or tags, and for each app
//! container a new image, command, arguments or environment. What is left at "keep" (empty)
//! is not sent. Container changes go as UpdateContainerGroup's `UpdateType=PatchUpdate`
//! (berth's extension, docs/API-EXTENSIONS.md): only the fields given change, the rest of each
//! container (ports, mounts, probes, security context) stays as the group has it.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use berth_eci::response::ContainerGroup;
use berth_eci::Action;
use maud::{html, Markup};

use super::num;
use crate::api::{call, kv};
use crate::auth::Signed;
use crate::page::{csrf_field, error_page};
use crate::Console;

/// The update form: a new size, restart policy or tags, and each container's changes.
pub fn form(who: &Signed, g: &ContainerGroup, base: &str) -> Markup {
    html! {
        details.update {
            summary { "Update" }
            form.card method="post" action={ (base) "/update" }
                data-confirm={ "Update " (g.container_group_name) "? Its containers may be recreated." } {
                (csrf_field(who))
                label for="update-size" { "Size" }
                select id="update-size" name="size" {
                    option value="" selected { "Keep " (num(g.cpu)) " vCPU, " (num(g.memory)) " GiB" }
                    @for s in berth_core::size::offered() {
                        option value={ (num(s.cpu)) "/" (num(s.memory)) } { (num(s.cpu)) " vCPU, " (num(s.memory)) " GiB" }
                    }
                }
                label for="update-restart" { "Restart policy" }
                select id="update-restart" name="restart" {
                    option value="" selected { "Keep " (g.restart_policy) }
                    @for p in ["Always", "OnFailure", "Never"] { option value=(p) { (p) } }
                }
                label for="update-tags" { "Tags (KEY=VALUE, one per line; they replace the group's; empty: keep)" }
                textarea id="update-tags" name="tags" rows="2" {}
                @for (i, ct) in g.containers.iter().enumerate() {
                    @let n = i + 1;
                    @let id = |f: &str| format!("update-c{n}-{f}");
                    @let name = |f: &str| format!("container.{n}.{f}");
                    fieldset {
                        legend { "Container " code { (ct.name) } " (each field left empty: keep)" }
                        input type="hidden" name=(name("name")) value=(ct.name);
                        label for=(id("image")) { "Image" }
                        input id=(id("image")) name=(name("image")) placeholder=(ct.image);
                        label for=(id("command")) { "Command (one per line; replaces the current one)" }
                        textarea id=(id("command")) name=(name("command")) rows="2"
                            placeholder=(ct.commands.join("\n")) {}
                        label for=(id("args")) { "Arguments (one per line; replace the current ones)" }
                        textarea id=(id("args")) name=(name("args")) rows="2"
                            placeholder=(ct.args.join("\n")) {}
                        label for=(id("env")) { "Environment (KEY=VALUE, one per line; replaces all of it)" }
                        textarea id=(id("env")) name=(name("env")) rows="2"
                            placeholder=(env_lines(ct)) {}
                    }
                }
                button type="submit" { "Update" }
            }
        }
    }
}

/// The container's environment as the form's lines (variables from a field shown by path).
fn env_lines(ct: &berth_eci::response::ContainerInfo) -> String {
    ct.environment_vars
        .iter()
        .map(|e| match &e.value_from {
            Some(v) => format!("{}=<{}>", e.key, v.field_ref.field_path),
            None => format!("{}={}", e.key, e.value),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the form asks of one container.
#[derive(Debug, Default, PartialEq)]
pub struct ContainerEdit {
    pub name: String,
    pub image: String,
    pub command: String,
    pub args: String,
    pub env: String,
}

impl ContainerEdit {
    fn changes(&self) -> bool {
        [&self.image, &self.command, &self.args, &self.env]
            .iter()
            .any(|f| !f.trim().is_empty())
    }
}

/// What the update form holds.
#[derive(Debug, Default, PartialEq)]
pub struct UpdateForm {
    pub csrf: Option<String>,
    pub size: String,
    pub restart: String,
    pub tags: String,
    /// By the form's container number.
    pub containers: BTreeMap<u32, ContainerEdit>,
}

fn lines(s: &str) -> impl Iterator<Item = &str> {
    s.lines().map(str::trim).filter(|l| !l.is_empty())
}

impl UpdateForm {
    /// The form's fields as posted; a field the form does not have is refused with its name.
    pub fn from_fields(fields: Vec<(String, String)>) -> Result<Self, String> {
        let mut f = Self::default();
        for (k, v) in fields {
            match k.as_str() {
                "csrf" => f.csrf = Some(v),
                "size" => f.size = v,
                "restart" => f.restart = v,
                "tags" => f.tags = v,
                _ => {
                    let edit = k
                        .strip_prefix("container.")
                        .and_then(|r| r.split_once('.'))
                        .and_then(|(n, field)| Some((n.parse::<u32>().ok()?, field)));
                    let Some((n, field)) = edit else {
                        return Err(k);
                    };
                    let c = f.containers.entry(n).or_default();
                    match field {
                        "name" => c.name = v,
                        "image" => c.image = v,
                        "command" => c.command = v,
                        "args" => c.args = v,
                        "env" => c.env = v,
                        _ => return Err(k),
                    }
                }
            }
        }
        Ok(f)
    }

    /// UpdateContainerGroup's parameters for group `id`.
    pub fn params(&self, id: &str) -> Vec<(String, String)> {
        let mut p = vec![kv("ContainerGroupId", id)];
        if let Some((cpu, mem)) = self.size.split_once('/') {
            p.push(kv("Cpu", cpu));
            p.push(kv("Memory", mem));
        }
        if !self.restart.is_empty() {
            p.push(kv("RestartPolicy", &self.restart));
        }
        for (i, t) in lines(&self.tags).enumerate() {
            let (k, v) = t.split_once('=').unwrap_or((t, ""));
            p.push(kv(format!("Tag.{}.Key", i + 1), k.trim()));
            p.push(kv(format!("Tag.{}.Value", i + 1), v.trim()));
        }
        let changed = self.containers.values().filter(|c| c.changes());
        for (i, c) in changed.enumerate() {
            let k = format!("Container.{}", i + 1);
            p.push(kv(format!("{k}.Name"), c.name.trim()));
            if !c.image.trim().is_empty() {
                p.push(kv(format!("{k}.Image"), c.image.trim()));
            }
            for (j, l) in lines(&c.command).enumerate() {
                p.push(kv(format!("{k}.Command.{}", j + 1), l));
            }
            for (j, l) in lines(&c.args).enumerate() {
                p.push(kv(format!("{k}.Arg.{}", j + 1), l));
            }
            for (j, l) in lines(&c.env).enumerate() {
                let (key, value) = l.split_once('=').unwrap_or((l, ""));
                p.push(kv(format!("{k}.EnvironmentVar.{}.Key", j + 1), key));
                p.push(kv(format!("{k}.EnvironmentVar.{}.Value", j + 1), value));
            }
        }
        if self.containers.values().any(ContainerEdit::changes) {
            p.push(kv("UpdateType", "PatchUpdate"));
        }
        p
    }
}

/// `POST /console/groups/{id}/update`.
pub async fn submit(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let (who, f) = match super::posted_form(&c, &headers, fields, UpdateForm::from_fields).await {
        Ok(posted) => posted,
        Err(r) => return *r,
    };
    match call(&c, &who, Action::UpdateContainerGroup, f.params(&id)).await {
        Ok(_) => Redirect::to(&format!("/console/groups/{}", super::enc(&id))).into_response(),
        Err(e) => error_page(Some(&who), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| kv(*k, *v)).collect()
    }

    #[test]
    fn the_update_form_sends_only_what_changes() {
        let f = UpdateForm::from_fields(fields(&[
            ("csrf", "t"),
            ("size", "1/2"),
            ("restart", ""),
            ("tags", "team = a\n\nowner=b\n"),
            ("container.1.name", "web"),
            ("container.1.image", ""),
            ("container.1.command", ""),
            ("container.1.args", ""),
            ("container.1.env", ""),
        ]))
        .unwrap();
        assert_eq!(f.csrf.as_deref(), Some("t"));
        assert_eq!(
            f.params("eci-x"),
            vec![
                kv("ContainerGroupId", "eci-x"),
                kv("Cpu", "1"),
                kv("Memory", "2"),
                kv("Tag.1.Key", "team"),
                kv("Tag.1.Value", "a"),
                kv("Tag.2.Key", "owner"),
                kv("Tag.2.Value", "b"),
            ]
        );
        let keep = UpdateForm::from_fields(fields(&[("restart", "Never")])).unwrap();
        assert_eq!(
            keep.params("eci-x"),
            vec![
                kv("ContainerGroupId", "eci-x"),
                kv("RestartPolicy", "Never")
            ]
        );
    }

    #[test]
    fn container_changes_are_a_patch_of_the_fields_given() {
        let f = UpdateForm::from_fields(fields(&[
            ("container.1.name", "web"),
            ("container.1.image", " busybox:2 "),
            ("container.1.env", "A=1\n\nB=x=y\n"),
            ("container.2.name", "side"),
            ("container.2.image", ""),
            ("container.3.name", "job"),
            ("container.3.command", "sh\n-c\n"),
            ("container.3.args", "echo hi; sleep 9\n"),
        ]))
        .unwrap();
        assert_eq!(
            f.params("eci-x"),
            vec![
                kv("ContainerGroupId", "eci-x"),
                kv("Container.1.Name", "web"),
                kv("Container.1.Image", "busybox:2"),
                kv("Container.1.EnvironmentVar.1.Key", "A"),
                kv("Container.1.EnvironmentVar.1.Value", "1"),
                kv("Container.1.EnvironmentVar.2.Key", "B"),
                kv("Container.1.EnvironmentVar.2.Value", "x=y"),
                kv("Container.2.Name", "job"),
                kv("Container.2.Command.1", "sh"),
                kv("Container.2.Command.2", "-c"),
                kv("Container.2.Arg.1", "echo hi; sleep 9"),
                kv("UpdateType", "PatchUpdate"),
            ]
        );
    }

    #[test]
    fn a_field_the_form_does_not_have_is_refused() {
        for k in [
            "container.1.ports",
            "container.x.image",
            "container.1",
            "other",
        ] {
            assert_eq!(
                UpdateForm::from_fields(fields(&[(k, "1")])),
                Err(k.to_string())
            );
        }
    }
}
