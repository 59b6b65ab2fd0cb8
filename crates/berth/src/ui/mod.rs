//! How the client commands speak to people and scripts: the `-o table|json|yaml` formats
//! (`format`, `yaml`), aligned tables (`table`), colour only on a terminal and never with
//! `NO_COLOR` (`colour`), and progress on a terminal or plain lines otherwise (`progress`).

pub(crate) mod colour;
pub(crate) mod format;
pub(crate) mod progress;
pub(crate) mod pull;
pub(crate) mod table;
pub(crate) mod time;
pub(crate) mod yaml;

pub(crate) use format::Format;
pub(crate) use table::Table;
