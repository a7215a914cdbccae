//! Loopback ports.

use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, PoisonError};

/// Where the kernel takes ephemeral ports from when nothing says otherwise (Linux's default).
const DEFAULT_EPHEMERAL: (u16, u16) = (32768, 60999);
/// The lowest port handed out: clear of the well-known and most registered services.
const LOWEST: u16 = 10000;
/// How many random candidates are tried before falling back to the kernel's choice.
const ATTEMPTS: usize = 64;

/// A TCP port on 127.0.0.1 that was free a moment ago, for a server the caller starts next.
///
/// The port is taken at random from *outside* the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`), never handed out twice by this process, and
/// checked by binding it. Port 0's answer would come from the ephemeral range, where every
/// outgoing connection of every parallel test also takes its local port: between this call
/// and the server's own bind, any of them could take it ("Address already in use", seen in CI).
/// Outside that range only another process picking the same port at random can race.
pub fn free_port() -> io::Result<u16> {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let (low, high) = candidate_range(ephemeral_range());
    let random = RandomState::new();
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    if low < high {
        let span = u64::from(high - low);
        for attempt in 0..ATTEMPTS {
            let port = low + (random.hash_one(attempt) % span) as u16;
            if !handed_out.contains(&port) && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
            {
                handed_out.insert(port);
                return Ok(port);
            }
        }
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = listener.local_addr()?.port();
    handed_out.insert(port);
    Ok(port)
}

/// The kernel's ephemeral range, or Linux's default where it cannot be read.
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut numbers = text.split_whitespace().map(str::parse::<u16>);
            Some((numbers.next()?.ok()?, numbers.next()?.ok()?))
        })
        .unwrap_or(DEFAULT_EPHEMERAL)
}

/// The half-open range to pick from: below the ephemeral range if there is room, else above it.
fn candidate_range((ephemeral_low, ephemeral_high): (u16, u16)) -> (u16, u16) {
    if ephemeral_low >= LOWEST + 2048 {
        (LOWEST, ephemeral_low)
    } else if ephemeral_high <= u16::MAX - 2048 {
        (ephemeral_high + 1, u16::MAX)
    } else {
        (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_can_be_bound_on_loopback_and_is_outside_the_ephemeral_range() {
        let (low, high) = ephemeral_range();
        for _ in 0..20 {
            let port = free_port().unwrap();
            assert_ne!(port, 0);
            if low >= LOWEST + 2048 {
                assert!((LOWEST..low).contains(&port), "{port} in {low}..={high}");
            }
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
            assert_eq!(listener.local_addr().unwrap().port(), port);
        }
    }

    #[test]
    fn no_port_is_handed_out_twice() {
        let ports: Vec<u16> = (0..200).map(|_| free_port().unwrap()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }

    #[test]
    fn the_range_avoids_the_ephemeral_one() {
        assert_eq!(candidate_range((32768, 60999)), (10000, 32768));
        assert_eq!(candidate_range((1024, 40000)), (40001, u16::MAX));
        assert_eq!(candidate_range((1024, 65535)), (0, 0));
    }
}
