//! Sharding: `--shard K/N` and the deterministic partition of packages over N shards,
//! balanced by weight (the sum of a package's tasks' last durations).
//!
//! Invariants: a package is never split (all its tasks land on one shard); the same weights
//! and names always give the same partition, on any machine; this module does no IO.

use std::fmt;
use std::str::FromStr;

/// One shard of N: `index` is 1-based, `1 <= index <= count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: usize,
    count: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShardError {
    #[error("`--shard` must be K/N (for example 1/3), got `{0}`")]
    Syntax(String),
    #[error("`--shard` count must be at least 1, got `{0}`")]
    ZeroCount(String),
    #[error("`--shard` index must be 1..={count}, got `{given}`")]
    IndexOutOfRange { given: String, count: usize },
}

impl Shard {
    pub fn new(index: usize, count: usize) -> Result<Shard, ShardError> {
        let given = format!("{index}/{count}");
        if count == 0 {
            return Err(ShardError::ZeroCount(given));
        }
        if index == 0 || index > count {
            return Err(ShardError::IndexOutOfRange { given, count });
        }
        Ok(Shard { index, count })
    }

    /// 1-based.
    pub fn index(self) -> usize {
        self.index
    }

    pub fn count(self) -> usize {
        self.count
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Shard, ShardError> {
        let syntax = || ShardError::Syntax(text.to_owned());
        let (index, count) = text.trim().split_once('/').ok_or_else(syntax)?;
        let index: usize = index.trim().parse().map_err(|_| syntax())?;
        let count: usize = count.trim().parse().map_err(|_| syntax())?;
        Shard::new(index, count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A package to place: its name (the tie-breaker) and its weight (milliseconds of its tasks'
/// last runs, or a fallback the caller chose when there are no records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedPackage<'a> {
    pub name: &'a str,
    pub weight: u64,
}

/// The 0-based shard of each package, in the order of `packages`, for `count` shards.
///
/// Greedy longest-processing-time: heaviest first (ties by name), each onto the currently
/// lightest shard (ties by lowest index). Deterministic; a package is never split.
/// `count == 0` is treated as 1.
pub fn partition(packages: &[WeightedPackage<'_>], count: usize) -> Vec<usize> {
    let count = count.max(1);
    let mut order: Vec<usize> = (0..packages.len()).collect();
    order.sort_by(|&a, &b| {
        packages[b]
            .weight
            .cmp(&packages[a].weight)
            .then_with(|| packages[a].name.cmp(packages[b].name))
            .then_with(|| a.cmp(&b))
    });
    let mut loads = vec![0u64; count];
    let mut shard_of = vec![0usize; packages.len()];
    for package in order {
        let lightest = (0..count)
            .min_by_key(|&shard| (loads[shard], shard))
            .unwrap_or(0);
        loads[lightest] = loads[lightest].saturating_add(packages[package].weight);
        shard_of[package] = lightest;
    }
    shard_of
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small seeded generator (xorshift64*) so the synthetic weights are the same everywhere.
    fn seeded_weights(seed: u64, n: usize) -> Vec<u64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let value = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
                // Mostly small crates, a few heavy ones: 50 ms .. ~60 s, skewed.
                let unit = (value >> 11) as f64 / (1u64 << 53) as f64;
                50 + (unit.powi(4) * 60_000.0) as u64
            })
            .collect()
    }

    fn synthetic(n: usize) -> (Vec<String>, Vec<u64>) {
        let names = (0..n).map(|i| format!("crate-{i:03}")).collect();
        (names, seeded_weights(0x5EED_1234, n))
    }

    fn packages<'a>(names: &'a [String], weights: &[u64]) -> Vec<WeightedPackage<'a>> {
        names
            .iter()
            .zip(weights)
            .map(|(name, &weight)| WeightedPackage { name, weight })
            .collect()
    }

    #[test]
    fn parses_k_of_n_and_rejects_the_rest() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard::new(2, 3).unwrap()));
        assert_eq!("2/3".parse::<Shard>().unwrap().to_string(), "2/3");
        assert_eq!(
            "0/3".parse::<Shard>(),
            Err(ShardError::IndexOutOfRange {
                given: "0/3".into(),
                count: 3
            })
        );
        assert_eq!(
            "4/3".parse::<Shard>().unwrap_err().to_string(),
            "`--shard` index must be 1..=3, got `4/3`"
        );
        assert_eq!(
            "1/0".parse::<Shard>(),
            Err(ShardError::ZeroCount("1/0".into()))
        );
        assert_eq!("x".parse::<Shard>(), Err(ShardError::Syntax("x".into())));
        assert_eq!(
            "1/x".parse::<Shard>(),
            Err(ShardError::Syntax("1/x".into()))
        );
        assert_eq!(
            "-1/3".parse::<Shard>(),
            Err(ShardError::Syntax("-1/3".into()))
        );
    }

    #[test]
    fn union_of_shards_is_every_package_with_no_overlap() {
        let (names, weights) = synthetic(500);
        let input = packages(&names, &weights);
        for count in [1, 2, 3, 7, 500, 600] {
            let shard_of = partition(&input, count);
            assert_eq!(shard_of.len(), input.len());
            assert!(shard_of.iter().all(|&s| s < count), "count {count}");
            // Each package has exactly one shard; gathering per shard covers all, once.
            let mut seen = vec![0usize; input.len()];
            for shard in 0..count {
                for (package, _) in shard_of.iter().enumerate().filter(|(_, s)| **s == shard) {
                    seen[package] += 1;
                }
            }
            assert!(seen.iter().all(|&times| times == 1), "count {count}");
        }
    }

    #[test]
    fn deterministic_whatever_the_input_order() {
        let (names, weights) = synthetic(200);
        let input = packages(&names, &weights);
        let first = partition(&input, 3);
        assert_eq!(first, partition(&input, 3));
        let mut reversed = input.clone();
        reversed.reverse();
        let mut again = partition(&reversed, 3);
        again.reverse();
        assert_eq!(first, again);
    }

    #[test]
    fn equal_weights_are_spread_by_name() {
        let names: Vec<String> = ["d", "a", "c", "b"].map(String::from).to_vec();
        let input = packages(&names, &[1, 1, 1, 1]);
        // Sorted by name: a, b, c, d go to shards 0, 1, 0, 1.
        assert_eq!(partition(&input, 2), vec![1, 0, 0, 1]);
    }

    #[test]
    fn balance_within_twenty_percent_of_ideal_on_500_synthetic_crates() {
        let (names, weights) = synthetic(500);
        let input = packages(&names, &weights);
        let total: u64 = weights.iter().sum();
        let heaviest = *weights.iter().max().unwrap();
        for count in [2, 3, 4, 8] {
            let shard_of = partition(&input, count);
            let mut loads = vec![0u64; count];
            for (package, &shard) in shard_of.iter().enumerate() {
                loads[shard] += weights[package];
            }
            let ideal = (total as f64 / count as f64).max(heaviest as f64);
            let worst = *loads.iter().max().unwrap() as f64;
            assert!(
                worst <= ideal * 1.2,
                "{count} shards: worst {worst} ms vs ideal {ideal} ms, loads {loads:?}"
            );
        }
    }

    #[test]
    fn more_shards_than_packages_leaves_some_empty() {
        let names: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let input = packages(&names, &[5, 3]);
        assert_eq!(partition(&input, 4), vec![0, 1]);
        assert_eq!(partition(&input, 0), vec![0, 0]);
    }
}
