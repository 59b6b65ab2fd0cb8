//! Colour only where a person reads it: on a terminal, and never when `NO_COLOR` is set to
//! anything but the empty string (https://no-color.org).

use std::io::IsTerminal;

use anstyle::{AnsiColor, Style};

/// Whether `NO_COLOR` asks for no colour.
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Whether what goes to stdout may be coloured.
pub(crate) fn stdout() -> bool {
    !no_color() && std::io::stdout().is_terminal()
}

/// Whether what goes to stderr may be coloured.
pub(crate) fn stderr() -> bool {
    !no_color() && std::io::stderr().is_terminal()
}

/// The colour of a status word (of a group, a container, an image cache, a key, an event's
/// type): green when it is where it should be, yellow on the way or to heed, red when it
/// failed.
pub(crate) fn of_status(status: &str) -> Option<Style> {
    let c = match status {
        "Running" | "Succeeded" | "Ready" | "Enabled" => AnsiColor::Green,
        "Pending" | "Scheduling" | "Restarting" | "Updating" | "Terminating" | "Creating"
        | "Preparing" | "Waiting" | "Warning" => AnsiColor::Yellow,
        "Failed" | "ScheduleFailed" | "Expired" | "Disabled" | "Terminated" => AnsiColor::Red,
        _ => return None,
    };
    Some(c.on_default())
}

/// `text` in `style` when `on`, else as it is.
pub(crate) fn paint(text: &str, style: Option<Style>, on: bool) -> String {
    match style {
        Some(s) if on => format!("{s}{text}{s:#}"),
        _ => text.to_string(),
    }
}

/// The `berth:` in front of an error, red and bold on a terminal.
pub(crate) fn error_prefix() -> String {
    let s = AnsiColor::Red.on_default().bold();
    paint("berth:", Some(s), stderr())
}

/// The `hint:` in front of the advice after an error.
pub(crate) fn hint_prefix() -> String {
    let s = AnsiColor::Cyan.on_default().bold();
    paint("hint:", Some(s), stderr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paint_adds_codes_only_when_asked() {
        let red = of_status("Failed");
        assert_eq!(paint("Failed", red, false), "Failed");
        let on = paint("Failed", red, true);
        assert!(on.starts_with("\x1b[") && on.ends_with("\x1b[0m"), "{on:?}");
        assert!(on.contains("Failed"));
        assert_eq!(paint("x", of_status("Unknown"), true), "x");
    }
}
