//! Kubernetes resource quantities as numbers: CPU in millicores, memory in bytes, for the
//! resource profiles of the overlays and the namespace's ResourceQuota.

/// Millicores of a CPU quantity (`250m`, `0.5`, `2`), or `None` when malformed.
pub(crate) fn cpu_millis(text: &str) -> Option<u64> {
    match text.strip_suffix('m') {
        Some(millis) => millis.parse().ok(),
        None => decimal_times(text, 1000),
    }
}

/// Bytes of a memory quantity (`64Mi`, `1Gi`, `500M`, `1000`), or `None` when malformed.
pub(crate) fn memory_bytes(text: &str) -> Option<u64> {
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
    for (suffix, multiplier) in UNITS {
        if let Some(number) = text.strip_suffix(suffix) {
            return decimal_times(number, multiplier);
        }
    }
    decimal_times(text, 1)
}

/// `number * multiplier` for a non-negative decimal `number`, rounded up.
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

/// `250m`, or `2` for whole cores.
pub(crate) fn format_cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        format!("{}", millis / 1000)
    } else {
        format!("{millis}m")
    }
}

/// `64Mi`, `1Gi`, `512Ki` or plain bytes, whichever is exact.
pub(crate) fn format_memory(bytes: u64) -> String {
    for (suffix, multiplier) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes.is_multiple_of(multiplier) && bytes > 0 {
            return format!("{}{suffix}", bytes / multiplier);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu() {
        assert_eq!(cpu_millis("250m"), Some(250));
        assert_eq!(cpu_millis("0.5"), Some(500));
        assert_eq!(cpu_millis("2"), Some(2000));
        assert_eq!(cpu_millis("1.0005"), Some(1001));
        assert_eq!(cpu_millis("x"), None);
        assert_eq!(format_cpu(2000), "2");
        assert_eq!(format_cpu(25), "25m");
    }

    #[test]
    fn memory() {
        assert_eq!(memory_bytes("64Mi"), Some(64 << 20));
        assert_eq!(memory_bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(memory_bytes("500M"), Some(500_000_000));
        assert_eq!(memory_bytes("1000"), Some(1000));
        assert_eq!(memory_bytes("lots"), None);
        assert_eq!(format_memory(64 << 20), "64Mi");
        assert_eq!(format_memory(2 << 30), "2Gi");
        assert_eq!(format_memory(1000), "1000");
    }
}
