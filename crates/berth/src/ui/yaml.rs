//! YAML for `-o yaml`: emitted from the JSON of the objects, so both carry the same fields.

use serde_json::Value;

/// YAML of a JSON value: block style, strings as JSON strings (valid YAML scalars, so no
/// value can be misread as a number, a boolean or a document marker). Written here rather
/// than with a YAML crate: the common one is unmaintained and this needs only emitting.
pub(crate) fn to_string(v: &Value) -> String {
    let mut out = String::new();
    emit(v, 0, &mut out);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn emit(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, val) in m {
                out.push_str(&format!("{pad}{}:", scalar(&Value::String(k.clone()))));
                nested(val, indent, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for val in a {
                out.push_str(&format!("{pad}-"));
                nested(val, indent, out);
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

/// A value after `key:` or `-`: on the same line when it is a scalar or empty.
fn nested(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            emit(v, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            emit(v, indent + 2, out);
        }
        _ => out.push_str(&format!(" {}\n", scalar(v))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        // A JSON string is a YAML double-quoted scalar.
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_keeps_every_value_as_it_was() {
        let v = serde_json::json!({
            "Name": "web", "Cpu": 0.5, "Ready": true, "Ip": null,
            "Tricky": "yes: no\n- x", "Empty": [], "Map": {},
            "Containers": [{"Name": "c", "Args": ["a", "1"]}, "s"],
        });
        let text = to_string(&v);
        assert!(text.contains("\"Tricky\": \"yes: no\\n- x\"\n"), "{text}");
        assert!(text.contains("\"Empty\": []\n"), "{text}");
        assert!(
            text.contains("\"Containers\":\n  -\n    \"Args\":\n      - \"a\"\n"),
            "{text}"
        );
        assert!(text.contains("\"Cpu\": 0.5\n"), "{text}");
    }
}
