//! Parsing of sizes ("10GiB") and Kubernetes-style resource quantities ("100m", "64Mi").

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

/// A CPU quantity: `250m`, `1`, `0.5`.
pub(crate) fn is_cpu_quantity(text: &str) -> bool {
    let number = text.strip_suffix('m').unwrap_or(text);
    is_decimal(number) && number.parse::<f64>().is_ok_and(|n| n > 0.0)
}

/// A memory quantity: `128Mi`, `1Gi`, `500M`, `1000000`.
pub(crate) fn is_memory_quantity(text: &str) -> bool {
    const SUFFIXES: [&str; 12] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
    ];
    let number = SUFFIXES
        .iter()
        .find_map(|s| text.strip_suffix(s))
        .unwrap_or(text);
    is_decimal(number) && number.parse::<f64>().is_ok_and(|n| n > 0.0)
}

fn is_decimal(text: &str) -> bool {
    !text.is_empty()
        && text.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.chars().filter(|&c| c == '.').count() <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(is_cpu_quantity("100m"));
        assert!(is_cpu_quantity("0.5"));
        assert!(!is_cpu_quantity("100Mi"));
        assert!(!is_cpu_quantity("0"));
        assert!(is_memory_quantity("64Mi"));
        assert!(is_memory_quantity("1G"));
        assert!(!is_memory_quantity("64MB"));
        assert!(!is_memory_quantity("-1Mi"));
    }
}
