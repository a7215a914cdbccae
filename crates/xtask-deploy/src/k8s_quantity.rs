//! Kubernetes resource quantities written back from numbers (CPU in millicores, memory in
//! bytes; the model parsed them), for the resource profiles of the overlays and the
//! namespace's ResourceQuota.

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
        assert_eq!(format_cpu(2000), "2");
        assert_eq!(format_cpu(25), "25m");
    }

    #[test]
    fn memory() {
        assert_eq!(format_memory(64 << 20), "64Mi");
        assert_eq!(format_memory(2 << 30), "2Gi");
        assert_eq!(format_memory(1000), "1000");
    }
}
