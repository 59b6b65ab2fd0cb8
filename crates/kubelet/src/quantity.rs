//! Kubernetes quantities (`500m`, `1.5Gi`, `1e3`) as numbers, and the size of the group a
//! pod's resources ask for.

use berth_core::size::{normalize_size, Size, SizeError};

const GIB: f64 = (1u64 << 30) as f64;

/// The value of a quantity (`250m` → 0.25, `1Ki` → 1024, `2e3` → 2000); `None` when it is
/// not one, negative, or not finite.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let s = q.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(end);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => GIB,
        "Ti" => GIB * 1024.0,
        "Pi" => GIB * 1024.0 * 1024.0,
        "Ei" => GIB * 1024.0 * 1024.0 * 1024.0,
        e if e.starts_with(['e', 'E']) => {
            let exp = e[1..].parse::<i32>().ok().filter(|x| x.abs() <= 40)?;
            10f64.powi(exp)
        }
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// Bytes in GiB.
pub(crate) fn gib(bytes: f64) -> f64 {
    bytes / GIB
}

/// What one container asks for: `(vCPU, GiB)`, each when it says.
pub type Ask = (Option<f64>, Option<f64>);

/// The group a pod's containers ask for, as ECI sizes a pod on its virtual node: each
/// container asks for its `limits` of `cpu` and `memory`, or its `requests` where it sets no
/// limit; the group needs the sum over the app containers, raised to the largest init
/// container (which run one at a time, before them), then rounded up to the smallest size
/// ECI offers that holds both (`berth_core::size`: 7 vCPU / 13 GiB → 8 / 16). A pod that asks
/// for nothing gets 2 vCPU / 4 GiB. `app` and `init` are `(vCPU, GiB)` per container.
pub fn group_size(app: &[Ask], init: &[Ask]) -> Result<Size, SizeError> {
    let total = |f: fn(&Ask) -> Option<f64>| -> Option<f64> {
        let sum = app.iter().filter_map(f).reduce(|a, b| a + b);
        let max = init.iter().filter_map(f).reduce(f64::max);
        match (sum, max) {
            (Some(s), Some(m)) => Some(s.max(m)),
            (s, m) => s.or(m),
        }
    };
    normalize_size(total(|c| c.0), total(|c| c.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_as_kubernetes_writes_them() {
        for (q, want) in [
            ("1", Some(1.0)),
            ("250m", Some(0.25)),
            ("0.5", Some(0.5)),
            ("1.5Gi", Some(1.5 * GIB)),
            ("128Mi", Some(128.0 * 1024.0 * 1024.0)),
            ("1k", Some(1000.0)),
            ("1Ki", Some(1024.0)),
            ("2e3", Some(2000.0)),
            ("1E", Some(1e18)),
            ("5n", Some(5e-9)),
            ("", None),
            ("-1", None),
            ("1Qi", None),
            ("Gi", None),
            ("1e", None),
            ("1e99999", None),
        ] {
            let got = parse_quantity(q);
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() <= w * 1e-12, "{q}: {g} != {w}"),
                (g, w) => assert_eq!(g, w, "{q}"),
            }
        }
    }
}
