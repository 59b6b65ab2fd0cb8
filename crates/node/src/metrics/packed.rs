//! A metric sample packed for keeping. [`MetricPoint`] holds every number in a `u64` field of
//! its own and every name in a `String` of its own: ~470–700 bytes a sample, 110–170 KB a
//! group for the hour of 15-s samples the node keeps. Packed, a sample's names are shared
//! with the samples before it that carry the same ones (a group's containers, interfaces and
//! file systems rarely change) and its numbers are LEB128 varints, most of them small
//! (rates, limits in millicores, packet and error counts): ~150 bytes. Unpacking gives back
//! the very sample.

use std::sync::Arc;

use berth_core::metric::{
    ContainerMetric, CpuUsage, FilesystemMetric, InterfaceMetric, MemoryUsage, MetricPoint,
};
use chrono::{DateTime, Utc};

/// The names a sample carries, in its order.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Names {
    containers: Vec<String>,
    interfaces: Vec<String>,
    /// Name and category of each file system.
    filesystems: Vec<(String, String)>,
}

impl Names {
    fn of(p: &MetricPoint) -> Self {
        Self {
            containers: p.containers.iter().map(|c| c.name.clone()).collect(),
            interfaces: p.interfaces.iter().map(|i| i.name.clone()).collect(),
            filesystems: p
                .filesystems
                .iter()
                .map(|f| (f.fs_name.clone(), f.category.clone()))
                .collect(),
        }
    }

    fn matches(&self, p: &MetricPoint) -> bool {
        self.containers.len() == p.containers.len()
            && self.interfaces.len() == p.interfaces.len()
            && self.filesystems.len() == p.filesystems.len()
            && self
                .containers
                .iter()
                .zip(&p.containers)
                .all(|(n, c)| *n == c.name)
            && self
                .interfaces
                .iter()
                .zip(&p.interfaces)
                .all(|(n, i)| *n == i.name)
            && self
                .filesystems
                .iter()
                .zip(&p.filesystems)
                .all(|((n, k), f)| *n == f.fs_name && *k == f.category)
    }
}

/// One sample, packed.
pub(super) struct Packed {
    secs: i64,
    nanos: u32,
    names: Arc<Names>,
    numbers: Box<[u8]>,
}

impl Packed {
    /// Packs `p`, sharing `names` (those of an earlier sample) when they are `p`'s.
    pub fn pack(p: &MetricPoint, names: Option<&Arc<Names>>) -> Self {
        let names = match names {
            Some(n) if n.matches(p) => Arc::clone(n),
            _ => Arc::new(Names::of(p)),
        };
        let mut out = Vec::with_capacity(160);
        put_usage(&mut out, &p.cpu, &p.memory);
        for c in &p.containers {
            put_usage(&mut out, &c.cpu, &c.memory);
        }
        for i in &p.interfaces {
            for v in [
                i.rx_bytes,
                i.rx_packets,
                i.rx_errors,
                i.rx_drops,
                i.tx_bytes,
                i.tx_packets,
                i.tx_errors,
                i.tx_drops,
            ] {
                put(&mut out, v);
            }
        }
        for f in &p.filesystems {
            for v in [f.capacity, f.usage, f.available] {
                put(&mut out, v);
            }
        }
        Self {
            secs: p.timestamp.timestamp(),
            nanos: p.timestamp.timestamp_subsec_nanos(),
            names,
            numbers: out.into_boxed_slice(),
        }
    }

    /// The sample's time in whole seconds since the epoch.
    pub fn secs(&self) -> i64 {
        self.secs
    }

    pub fn timestamp(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.secs, self.nanos).unwrap_or_default()
    }

    pub fn names(&self) -> &Arc<Names> {
        &self.names
    }

    /// The sample as it was packed.
    pub fn unpack(&self) -> MetricPoint {
        let mut r = Reader(&self.numbers);
        let (cpu, memory) = r.usage();
        let containers = self
            .names
            .containers
            .iter()
            .map(|name| {
                let (cpu, memory) = r.usage();
                ContainerMetric {
                    name: name.clone(),
                    cpu,
                    memory,
                }
            })
            .collect();
        let interfaces = self
            .names
            .interfaces
            .iter()
            .map(|name| InterfaceMetric {
                name: name.clone(),
                rx_bytes: r.next(),
                rx_packets: r.next(),
                rx_errors: r.next(),
                rx_drops: r.next(),
                tx_bytes: r.next(),
                tx_packets: r.next(),
                tx_errors: r.next(),
                tx_drops: r.next(),
            })
            .collect();
        let filesystems = self
            .names
            .filesystems
            .iter()
            .map(|(fs_name, category)| FilesystemMetric {
                fs_name: fs_name.clone(),
                category: category.clone(),
                capacity: r.next(),
                usage: r.next(),
                available: r.next(),
            })
            .collect();
        MetricPoint {
            timestamp: self.timestamp(),
            cpu,
            memory,
            containers,
            interfaces,
            filesystems,
        }
    }

    /// The bytes this sample holds beyond what it shares.
    #[cfg(test)]
    fn own_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.numbers.len()
    }
}

fn put_usage(out: &mut Vec<u8>, cpu: &CpuUsage, memory: &MemoryUsage) {
    for v in [
        cpu.usage_core_ns,
        cpu.usage_nano_cores,
        cpu.limit_millicores,
        memory.usage_bytes,
        memory.working_set_bytes,
        memory.rss_bytes,
        memory.cache_bytes,
        memory.available_bytes,
    ] {
        put(out, v);
    }
}

/// Appends `v` as an unsigned LEB128 varint (1 byte below 128, at most 10).
fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads the varints [`put`] wrote, in order; past the end (never, for bytes it wrote) 0.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn next(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0u32;
        while let Some((&b, rest)) = self.0.split_first() {
            self.0 = rest;
            if shift < 64 {
                v |= u64::from(b & 0x7f) << shift;
            }
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        v
    }

    fn usage(&mut self) -> (CpuUsage, MemoryUsage) {
        let cpu = CpuUsage {
            usage_core_ns: self.next(),
            usage_nano_cores: self.next(),
            limit_millicores: self.next(),
        };
        let memory = MemoryUsage {
            usage_bytes: self.next(),
            working_set_bytes: self.next(),
            rss_bytes: self.next(),
            cache_bytes: self.next(),
            available_bytes: self.next(),
        };
        (cpu, memory)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn interface(name: &str, base: u64) -> InterfaceMetric {
        InterfaceMetric {
            name: name.into(),
            rx_bytes: base * 1500,
            rx_packets: base,
            rx_errors: 0,
            rx_drops: 1,
            tx_bytes: base * 900,
            tx_packets: base / 2,
            tx_errors: 127,
            tx_drops: 128,
        }
    }

    /// A sample of a one-container group as the node takes them: two interfaces, the
    /// temporary storage.
    fn typical() -> MetricPoint {
        let usage = |ns: u64| {
            (
                CpuUsage {
                    usage_core_ns: ns,
                    usage_nano_cores: 1_234_567,
                    limit_millicores: 250,
                },
                MemoryUsage {
                    usage_bytes: 3 << 20,
                    working_set_bytes: 2 << 20,
                    rss_bytes: 300 << 10,
                    cache_bytes: 1 << 20,
                    available_bytes: (512 << 20) - (2 << 20),
                },
            )
        };
        let (cpu, memory) = usage(86_400_000_000_000);
        let (c_cpu, c_memory) = usage(86_000_000_000_000);
        MetricPoint {
            timestamp: DateTime::from_timestamp(1_764_979_200, 123_456_789).unwrap(),
            cpu,
            memory,
            containers: vec![ContainerMetric {
                name: "app".into(),
                cpu: c_cpu,
                memory: c_memory,
            }],
            interfaces: vec![interface("lo", 10), interface("eth0", 1_000_000)],
            filesystems: vec![temporary_storage()],
        }
    }

    /// The temporary storage of a group as the node samples it: 40 KiB used of 30 GiB.
    pub(in crate::metrics) fn temporary_storage() -> FilesystemMetric {
        FilesystemMetric {
            fs_name: "temporary-storage".into(),
            category: "System".into(),
            capacity: 30 << 30,
            usage: 40 << 10,
            available: (30 << 30) - (40 << 10),
        }
    }

    #[test]
    fn a_sample_unpacks_as_it_was() {
        let p = typical();
        assert_eq!(Packed::pack(&p, None).unpack(), p);
        // Every width of a varint, and none of anything.
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut q = typical();
            q.cpu.usage_core_ns = v;
            q.containers[0].memory.available_bytes = v;
            q.interfaces[1].tx_drops = v;
            q.filesystems[0].available = v;
            assert_eq!(Packed::pack(&q, None).unpack(), q, "{v}");
        }
        let empty = MetricPoint::default();
        assert_eq!(Packed::pack(&empty, None).unpack(), empty);
        let mut two = typical();
        two.containers.push(ContainerMetric {
            name: "sidecar".into(),
            ..Default::default()
        });
        two.filesystems.push(FilesystemMetric {
            fs_name: "data".into(),
            category: "Volume".into(),
            ..Default::default()
        });
        assert_eq!(Packed::pack(&two, None).unpack(), two);
    }

    #[test]
    fn names_are_shared_while_they_stay_the_same() {
        let first = Packed::pack(&typical(), None);
        let second = Packed::pack(&typical(), Some(first.names()));
        assert!(Arc::ptr_eq(first.names(), second.names()));
        let mut renamed = typical();
        renamed.interfaces[1].name = "eth1".into();
        let third = Packed::pack(&renamed, Some(second.names()));
        assert!(!Arc::ptr_eq(second.names(), third.names()));
        assert_eq!(third.unpack(), renamed);
        let mut more = typical();
        more.containers.push(ContainerMetric::default());
        let fourth = Packed::pack(&more, Some(first.names()));
        assert!(!Arc::ptr_eq(first.names(), fourth.names()));
        assert_eq!(fourth.unpack(), more);
    }

    #[test]
    fn a_typical_sample_packs_into_a_third() {
        let p = typical();
        let packed = Packed::pack(&p, None);
        // What the unpacked sample holds: itself and, on the heap, its vectors' elements
        // and its names.
        let strings: usize = p.containers.iter().map(|c| c.name.len()).sum::<usize>()
            + p.interfaces.iter().map(|i| i.name.len()).sum::<usize>()
            + p.filesystems
                .iter()
                .map(|f| f.fs_name.len() + f.category.len())
                .sum::<usize>();
        let unpacked = std::mem::size_of::<MetricPoint>()
            + p.containers.len() * std::mem::size_of::<ContainerMetric>()
            + p.interfaces.len() * std::mem::size_of::<InterfaceMetric>()
            + p.filesystems.len() * std::mem::size_of::<FilesystemMetric>()
            + strings;
        assert!(
            packed.own_bytes() * 3 <= unpacked,
            "packed {} bytes, unpacked {unpacked}",
            packed.own_bytes()
        );
        assert!(packed.own_bytes() <= 160, "{}", packed.own_bytes());
    }
}
