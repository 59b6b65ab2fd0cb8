//! `UpdateType=PatchUpdate` (berth's extension) of UpdateContainerGroup: each `Container.N`
//! names one of the group's app containers and gives only the fields that change — `Image`,
//! `Command.M`, `Arg.M`, `EnvironmentVar.M` (each list given replaces the container's list) —
//! and the rest of the container stays as it is. Any other field of a container is refused by
//! name: a change of those gives the whole container (`IncrementalUpdate`).

use berth_core::{ContainerSpec, EnvVar};

use super::{create, validate};
use crate::error::ApiError;
use crate::params::Params;

/// The fields of `Container.N` a patch may give.
const FIELDS: [&str; 5] = ["Name", "Image", "Command", "Arg", "EnvironmentVar"];

/// What a patch changes of one app container.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerPatch {
    /// The parameter prefix (`Container.N`), for errors.
    prefix: String,
    name: String,
    image: Option<String>,
    command: Option<Vec<String>>,
    args: Option<Vec<String>>,
    env: Option<Vec<EnvVar>>,
}

/// The `Container.N` patches of a request, checked as CreateContainerGroup checks the same
/// fields.
pub fn decode(p: &Params) -> Result<Vec<ContainerPatch>, ApiError> {
    let idx = p.indexes("Container")?;
    if idx.len() > create::MAX_CONTAINERS {
        return Err(ApiError::value_exceeded(
            "Container",
            format!("allows at most {} containers", create::MAX_CONTAINERS),
        ));
    }
    idx.into_iter()
        .map(|i| one(p, &format!("Container.{i}")))
        .collect()
}

fn one(p: &Params, prefix: &str) -> Result<ContainerPatch, ApiError> {
    let under = format!("{prefix}.");
    for (k, _) in p.iter().filter(|(k, _)| k.starts_with(&under)) {
        let field = k[under.len()..].split('.').next().unwrap_or_default();
        if !FIELDS.contains(&field) {
            return Err(ApiError::invalid_parameter(
                k,
                "is not changed by UpdateType=PatchUpdate, which takes a container's Image, \
                 Command, Arg and EnvironmentVar (give the whole container with IncrementalUpdate)",
            ));
        }
    }
    let k = |s: &str| format!("{prefix}.{s}");
    let name = p.required(&k("Name"))?;
    validate::container_name(&k("Name"), &name)?;
    let image = match p.raw(&k("Image")) {
        None => None,
        Some(_) => {
            let image = p.required(&k("Image"))?;
            create::image_reference(&k("Image"), &image)?;
            Some(image)
        }
    };
    let given = |field: &str| p.has_any(&k(field));
    Ok(ContainerPatch {
        prefix: prefix.to_string(),
        name,
        image,
        command: given("Command")
            .then(|| create::command(p, prefix))
            .transpose()?,
        args: given("Arg").then(|| create::args(p, prefix)).transpose()?,
        env: given("EnvironmentVar")
            .then(|| create::env(p, prefix))
            .transpose()?,
    })
}

/// `patches` applied to the group's app containers; a patch naming none of them is refused.
pub fn apply(
    containers: &mut [ContainerSpec],
    patches: Vec<ContainerPatch>,
) -> Result<(), ApiError> {
    for patch in patches {
        let Some(c) = containers.iter_mut().find(|c| c.name == patch.name) else {
            return Err(ApiError::invalid_parameter(
                &format!("{}.Name", patch.prefix),
                format!("names no app container of the group: {:?}", patch.name),
            ));
        };
        if let Some(image) = patch.image {
            c.image = image;
        }
        if let Some(command) = patch.command {
            c.command = command;
        }
        if let Some(args) = patch.args {
            c.args = args;
        }
        if let Some(env) = patch.env {
            c.env = env;
        }
    }
    Ok(())
}
