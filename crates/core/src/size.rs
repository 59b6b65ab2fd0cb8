//! Rounds requested vCPU and memory up to a size ECI offers (ECI_API.md §8.1).

use serde::{Deserialize, Serialize};

/// vCPU count with the memory sizes (GiB) offered for it, smallest first.
const TABLE: &[(f64, &[f64])] = &[
    (0.25, &[0.5, 1.0]),
    (0.5, &[1.0, 2.0]),
    (1.0, &[2.0, 4.0, 8.0]),
    (2.0, &[1.0, 2.0, 4.0, 8.0, 16.0]),
    (4.0, &[2.0, 4.0, 8.0, 16.0, 32.0]),
    (8.0, &[4.0, 8.0, 16.0, 32.0, 64.0]),
    (12.0, &[12.0, 24.0, 48.0, 96.0]),
    (16.0, &[16.0, 32.0, 64.0, 128.0]),
    (24.0, &[24.0, 48.0, 96.0, 192.0]),
    (32.0, &[32.0, 64.0, 128.0, 256.0]),
    (52.0, &[96.0, 192.0, 384.0]),
    (64.0, &[128.0, 256.0, 512.0]),
];

/// Default size when neither the group nor its containers ask for one.
pub const DEFAULT_CPU: f64 = 2.0;
pub const DEFAULT_MEMORY: f64 = 4.0;

/// A supported instance size.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Size {
    pub cpu: f64,
    /// GiB.
    pub memory: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SizeError {
    #[error("the requested size of {cpu} vCPU and {memory} GiB exceeds the largest size offered (64 vCPU, 512 GiB)")]
    TooLarge { cpu: f64, memory: f64 },
    #[error("vCPU and memory must be positive finite numbers, got {cpu} vCPU and {memory} GiB")]
    Invalid { cpu: f64, memory: f64 },
}

/// Every size offered, smallest vCPU first, then smallest memory.
pub fn offered() -> impl Iterator<Item = Size> {
    TABLE.iter().flat_map(|(cpu, mems)| {
        mems.iter().map(|m| Size {
            cpu: *cpu,
            memory: *m,
        })
    })
}

/// Rounds a request up to the smallest offered size that holds it.
///
/// `None` for both gives the default 2 vCPU / 4 GiB; `None` for one of them takes the smallest
/// value the table offers with the other.
pub fn normalize_size(cpu: Option<f64>, memory: Option<f64>) -> Result<Size, SizeError> {
    if cpu.is_none() && memory.is_none() {
        return Ok(Size {
            cpu: DEFAULT_CPU,
            memory: DEFAULT_MEMORY,
        });
    }
    let c = cpu.unwrap_or(0.0);
    let m = memory.unwrap_or(0.0);
    if !c.is_finite() || !m.is_finite() || c < 0.0 || m < 0.0 || (c == 0.0 && m == 0.0) {
        return Err(SizeError::Invalid { cpu: c, memory: m });
    }
    for (tcpu, mems) in TABLE {
        if *tcpu + 1e-9 < c {
            continue;
        }
        if let Some(tm) = mems.iter().find(|tm| **tm + 1e-9 >= m) {
            return Ok(Size {
                cpu: *tcpu,
                memory: *tm,
            });
        }
    }
    Err(SizeError::TooLarge { cpu: c, memory: m })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(c: Option<f64>, m: Option<f64>) -> (f64, f64) {
        let s = normalize_size(c, m).unwrap();
        (s.cpu, s.memory)
    }

    #[test]
    fn defaults_to_two_by_four() {
        assert_eq!(n(None, None), (2.0, 4.0));
    }

    #[test]
    fn exact_sizes_stay() {
        for (c, mems) in TABLE {
            for m in mems.iter() {
                assert_eq!(n(Some(*c), Some(*m)), (*c, *m));
            }
        }
    }

    #[test]
    fn rounds_up() {
        assert_eq!(n(Some(0.1), Some(0.1)), (0.25, 0.5));
        assert_eq!(n(Some(0.3), Some(0.5)), (0.5, 1.0));
        assert_eq!(n(Some(0.5), Some(3.0)), (1.0, 4.0));
        assert_eq!(n(Some(7.0), Some(13.0)), (8.0, 16.0));
        assert_eq!(n(Some(1.0), Some(9.0)), (2.0, 16.0));
        assert_eq!(n(Some(2.0), Some(17.0)), (4.0, 32.0));
        assert_eq!(n(Some(10.0), Some(1.0)), (12.0, 12.0));
        assert_eq!(n(Some(8.0), Some(100.0)), (16.0, 128.0));
        assert_eq!(n(Some(33.0), Some(1.0)), (52.0, 96.0));
        assert_eq!(n(Some(1.0), None), (1.0, 2.0));
        assert_eq!(n(None, Some(3.0)), (1.0, 4.0));
    }

    #[test]
    fn too_large_and_invalid() {
        assert!(matches!(
            normalize_size(Some(65.0), Some(1.0)),
            Err(SizeError::TooLarge { .. })
        ));
        assert!(matches!(
            normalize_size(Some(1.0), Some(513.0)),
            Err(SizeError::TooLarge { .. })
        ));
        assert!(matches!(
            normalize_size(Some(-1.0), Some(1.0)),
            Err(SizeError::Invalid { .. })
        ));
        assert!(matches!(
            normalize_size(Some(f64::NAN), None),
            Err(SizeError::Invalid { .. })
        ));
        assert!(matches!(
            normalize_size(Some(0.0), Some(0.0)),
            Err(SizeError::Invalid { .. })
        ));
    }
}
