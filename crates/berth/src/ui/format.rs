//! `-o table|json|yaml`: a listing's objects as a table for people (the default of
//! listings), or whole, with the field names of the API (docs/CLI.md), as JSON or YAML.

use serde::Serialize;
use serde_json::Value;

/// The output format of a listing or of `inspect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns for people.
    #[value(alias = "text")]
    Table,
    /// The full objects, pretty-printed JSON.
    Json,
    /// The same objects as YAML.
    Yaml,
}

/// `v` as a JSON or YAML document ending with a line break; `None` for `Table`, which each
/// command draws itself.
pub(crate) fn document<T: Serialize + ?Sized>(
    format: Format,
    v: &T,
) -> anyhow::Result<Option<String>> {
    let v: Value = serde_json::to_value(v)?;
    Ok(match format {
        Format::Table => None,
        Format::Json => Some(serde_json::to_string_pretty(&v)? + "\n"),
        Format::Yaml => Some(super::yaml::to_string(&v)),
    })
}

/// Prints `v` as JSON or YAML and says so, or returns false for `Table`.
pub(crate) fn print_document<T: Serialize + ?Sized>(format: Format, v: &T) -> anyhow::Result<bool> {
    match document(format, v)? {
        Some(text) => {
            print!("{text}");
            Ok(true)
        }
        None => Ok(false),
    }
}
