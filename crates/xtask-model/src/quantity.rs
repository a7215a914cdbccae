//! Quantities of the configuration, parsed once into typed values: byte sizes ("10GiB") and
//! Kubernetes resource quantities (CPU "100m", memory "64Mi"). Consumers read numbers, never
//! parse text again.

use std::fmt;

/// Parses a byte size such as `512`, `200kB`, `64MiB`, `10GiB`. Returns `None` when malformed.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().ok()?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1000,
        "KiB" => 1 << 10,
        "MB" => 1000 * 1000,
        "MiB" => 1 << 20,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1 << 30,
        "TB" => 1000 * 1000 * 1000 * 1000,
        "TiB" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

/// A positive CPU quantity (`250m`, `0.5`, `2`): its value in millicores, a fraction of a
/// millicore rounded up, and the text as written (what [`fmt::Display`] shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuQuantity {
    millis: u64,
    text: String,
}

impl CpuQuantity {
    /// `None` when `text` is not a decimal number of cores or of millicores (`m`), or is zero.
    pub fn parse(text: &str) -> Option<CpuQuantity> {
        let millis = match text.strip_suffix('m') {
            Some(millis) => decimal_times(millis, 1)?,
            None => decimal_times(text, 1000)?,
        };
        (millis > 0).then(|| CpuQuantity {
            millis,
            text: text.to_string(),
        })
    }

    /// Millicores, at least 1.
    pub fn millis(&self) -> u64 {
        self.millis
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for CpuQuantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A positive memory quantity (`64Mi`, `1Gi`, `500M`, `1000`): its value in bytes, a fraction
/// of a byte rounded up, and the text as written (what [`fmt::Display`] shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryQuantity {
    bytes: u64,
    text: String,
}

impl MemoryQuantity {
    /// `None` when `text` is not a decimal number with an optional Kubernetes suffix (`Ki`,
    /// `Mi`, ... `Ei`, `k`, `M`, ... `E`), or is zero.
    pub fn parse(text: &str) -> Option<MemoryQuantity> {
        const UNITS: [(&str, u64); 12] = [
            ("Ki", 1 << 10),
            ("Mi", 1 << 20),
            ("Gi", 1 << 30),
            ("Ti", 1 << 40),
            ("Pi", 1 << 50),
            ("Ei", 1 << 60),
            ("k", 1_000),
            ("M", 1_000_000),
            ("G", 1_000_000_000),
            ("T", 1_000_000_000_000),
            ("P", 1_000_000_000_000_000),
            ("E", 1_000_000_000_000_000_000),
        ];
        let bytes = UNITS
            .iter()
            .find_map(|&(suffix, multiplier)| {
                text.strip_suffix(suffix)
                    .map(|number| decimal_times(number, multiplier))
            })
            .unwrap_or_else(|| decimal_times(text, 1))?;
        (bytes > 0).then(|| MemoryQuantity {
            bytes,
            text: text.to_string(),
        })
    }

    /// Bytes, at least 1.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for MemoryQuantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `number * multiplier` for a non-negative decimal `number` (`2`, `0.5`, `.5`, `5.`), rounded
/// up; `None` when malformed or out of range.
fn decimal_times(number: &str, multiplier: u64) -> Option<u64> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty()
        || fraction.len() > 18
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let numerator: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    let denominator = 10u128.pow(u32::try_from(fraction.len()).ok()?);
    let fraction_part = (u128::from(multiplier) * numerator).div_ceil(denominator);
    whole
        .checked_mul(multiplier)?
        .checked_add(u64::try_from(fraction_part).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu_millis(text: &str) -> Option<u64> {
        CpuQuantity::parse(text).map(|q| q.millis())
    }

    fn memory_bytes(text: &str) -> Option<u64> {
        MemoryQuantity::parse(text).map(|q| q.bytes())
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("10GiB"), Some(10 << 30));
        assert_eq!(parse_size("200kB"), Some(200_000));
        assert_eq!(parse_size("3 MiB"), Some(3 << 20));
        assert_eq!(parse_size("ten"), None);
        assert_eq!(parse_size("10XB"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn quantities() {
        assert!(CpuQuantity::parse("100m").is_some());
        assert!(CpuQuantity::parse("0.5").is_some());
        assert!(CpuQuantity::parse("100Mi").is_none());
        assert!(CpuQuantity::parse("0").is_none());
        assert!(MemoryQuantity::parse("64Mi").is_some());
        assert!(MemoryQuantity::parse("1G").is_some());
        assert!(MemoryQuantity::parse("64MB").is_none());
        assert!(MemoryQuantity::parse("-1Mi").is_none());
    }

    #[test]
    fn cpu() {
        assert_eq!(cpu_millis("250m"), Some(250));
        assert_eq!(cpu_millis("0.5"), Some(500));
        assert_eq!(cpu_millis("2"), Some(2000));
        assert_eq!(cpu_millis("1.0005"), Some(1001));
        assert_eq!(cpu_millis("x"), None);
    }

    #[test]
    fn memory() {
        assert_eq!(memory_bytes("64Mi"), Some(64 << 20));
        assert_eq!(memory_bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(memory_bytes("500M"), Some(500_000_000));
        assert_eq!(memory_bytes("1000"), Some(1000));
        assert_eq!(memory_bytes("lots"), None);
    }

    #[test]
    fn fractions_round_up_and_the_text_is_kept() {
        let cpu = CpuQuantity::parse("0.5m").expect("a fraction of a millicore");
        assert_eq!((cpu.millis(), cpu.to_string()), (1, "0.5m".to_string()));
        let memory = MemoryQuantity::parse("0.5").expect("a fraction of a byte");
        assert_eq!((memory.bytes(), memory.as_str()), (1, "0.5"));
        assert_eq!(cpu_millis("0.0001"), Some(1));
    }

    #[test]
    fn zero_and_out_of_range_are_refused() {
        assert_eq!(cpu_millis("0m"), None);
        assert_eq!(cpu_millis("0.0"), None);
        assert_eq!(memory_bytes("0Mi"), None);
        assert_eq!(memory_bytes("99999999999999999999"), None);
        assert_eq!(memory_bytes("20Ei"), None);
        assert_eq!(cpu_millis("."), None);
    }
}
