//! Sizes and durations as people write and read them: one parser for `1G`, `512M`, `64KiB`,
//! `4096` (binary units, everywhere forkbench takes a size), and one formatter each for byte
//! sizes and nanoseconds.

use std::fmt;
use std::str::FromStr;

/// A size that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size '{0}' (examples: 4096, 64K, 2M, 1G, 512MiB)")]
pub struct BadSize(pub String);

/// Parse a byte size: digits with an optional K/M/G/T suffix (binary units; `B`, `iB` allowed).
pub fn parse_size(s: &str) -> Result<u64, BadSize> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || BadSize(s.to_string());
    let n: u64 = num.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1u64 << shift).ok_or_else(bad)
}

/// A number of bytes, written and read as `1G`, `64M`, `4096`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Size(pub u64);

impl Size {
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Size {
    /// The largest exact binary unit: `1G`, `64M`, `16K`, `4097`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
            if b != 0 && b.is_multiple_of(1 << shift) {
                return f.pad(&format!("{}{unit}", b >> shift));
            }
        }
        f.pad(&b.to_string())
    }
}

impl FromStr for Size {
    type Err = BadSize;
    fn from_str(s: &str) -> Result<Self, BadSize> {
        parse_size(s).map(Size)
    }
}

impl serde::Serialize for Size {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Size {
    /// A string (`"1G"`) or a number of bytes.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(b) => Ok(Size(b)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A duration in nanoseconds with a readable unit: `850 ns`, `4.56 µs`, `7.891 ms`, `1.234 s`.
pub fn fmt_ns(ns: f64) -> String {
    let a = ns.abs();
    if !ns.is_finite() {
        format!("{ns}")
    } else if a >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if a >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if a >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{ns:.0} ns")
    } else {
        format!("{ns:.2} ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("2M").unwrap(), 2 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("1024M").unwrap(), 1 << 30);
        assert_eq!(parse_size("1048576KiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64kb").unwrap(), 64 << 10);
        assert_eq!(parse_size(" 64 m").unwrap(), 64 << 20);
        for bad in ["1.5G", "G", "", "-1M", "99999999999999T", "1X"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_print_in_the_largest_exact_unit_and_round_trip() {
        for (b, s) in [
            (1u64 << 30, "1G"),
            (64 << 20, "64M"),
            (16 << 10, "16K"),
            (4097, "4097"),
            (0, "0"),
            (3 << 40, "3T"),
        ] {
            assert_eq!(Size(b).to_string(), s);
            assert_eq!(s.parse::<Size>().unwrap(), Size(b));
        }
        assert_eq!(serde_json::to_string(&Size(2 << 20)).unwrap(), "\"2M\"");
        assert_eq!(
            serde_json::from_str::<Size>("\"1GiB\"").unwrap(),
            Size(1 << 30)
        );
        assert_eq!(serde_json::from_str::<Size>("4096").unwrap(), Size(4096));
    }

    #[test]
    fn durations() {
        assert_eq!(fmt_ns(850.0), "850 ns");
        assert_eq!(fmt_ns(4.5), "4.50 ns");
        assert_eq!(fmt_ns(4_560.0), "4.56 µs");
        assert_eq!(fmt_ns(7_891_234.0), "7.891 ms");
        assert_eq!(fmt_ns(1.234e9), "1.234 s");
        assert_eq!(fmt_ns(-2_000_000.0), "-2.000 ms");
    }
}
