//! The machine's load during a benchmark: the deliberate one ([`BusyLoad`], `bench runner
//! --load N`: N threads spinning for the whole run) and the one nobody asked for
//! ([`CpuCounters`]: what other processes took, from `/proc/stat`), so that a figure measured
//! on a busy machine says so and cannot pass as a quiet one.
//!
//! Accounting: `/proc/stat`'s first line is the whole machine's CPU time (user, nice, system,
//! idle, iowait, irq, softirq, steal, in clock ticks); `/proc/self/stat` gives this process's
//! own time (utime, stime: every thread, the busy loops included) and that of the children it
//! has waited for (cutime, cstime: the timed tools and whatever they waited for). Between two
//! readings taken while no child runs, "others" = machine busy - own, as a share of the
//! machine's total ticks times its cores (cores busy on average); "steal" is time the
//! hypervisor gave to other guests. No clock-tick rate is needed: every figure is a ratio of
//! ticks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, bail};

/// `--load N`: N threads that spin until dropped (one per core they are meant to occupy).
#[derive(Debug)]
pub struct BusyLoad {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl BusyLoad {
    /// Starts `threads` busy loops (none for 0).
    pub fn start(threads: usize) -> anyhow::Result<BusyLoad> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            let stop = Arc::clone(&stop);
            let handle = std::thread::Builder::new()
                .name(format!("bench-load-{index}"))
                .spawn(move || {
                    let mut x: u64 = index as u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005))
                                .wrapping_add(1);
                        }
                    }
                })
                .context("failed to start a busy-loop thread for --load")?;
            handles.push(handle);
        }
        Ok(BusyLoad {
            stop,
            threads: handles,
        })
    }

    pub fn threads(&self) -> usize {
        self.threads.len()
    }
}

impl Drop for BusyLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

/// One reading of the machine's and this process's CPU time, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuCounters {
    /// Every tick of every core (busy, idle, iowait, steal).
    pub total: u64,
    /// Busy ticks of every process and the kernel (user, nice, system, irq, softirq).
    pub busy: u64,
    /// Ticks the hypervisor ran something else while this machine wanted to run.
    pub steal: u64,
    /// This process (all threads) and its waited-for children.
    pub own: u64,
    /// The waited-for children alone (cutime + cstime): the CPU time of the timed tools.
    pub children: u64,
    pub cores: usize,
}

impl CpuCounters {
    /// Reads `/proc/stat` and `/proc/self/stat`.
    pub fn read() -> anyhow::Result<CpuCounters> {
        let stat = std::fs::read_to_string("/proc/stat").context("failed to read `/proc/stat`")?;
        let own = std::fs::read_to_string("/proc/self/stat")
            .context("failed to read `/proc/self/stat`")?;
        CpuCounters::parse(&stat, &own)
    }

    /// Parses the text of `/proc/stat` and `/proc/<pid>/stat`.
    pub fn parse(proc_stat: &str, self_stat: &str) -> anyhow::Result<CpuCounters> {
        let line = proc_stat
            .lines()
            .find(|line| line.starts_with("cpu "))
            .context("`/proc/stat` has no `cpu` line")?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|field| field.parse::<u64>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("`/proc/stat`: unreadable `cpu` line `{line}`"))?;
        if fields.len() < 8 {
            bail!(
                "`/proc/stat`: `cpu` line has {} fields, expected 8 or more",
                fields.len()
            );
        }
        // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
        // already counted in user and nice.
        let total = fields[..8].iter().sum();
        let busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6];
        let steal = fields[7];
        let cores = proc_stat
            .lines()
            .filter(|line| {
                line.strip_prefix("cpu")
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            })
            .count()
            .max(1);
        // The command name (field 2) may hold spaces: fields count from its closing paren.
        let after_name = self_stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .context("`/proc/self/stat`: no `)` after the command name")?;
        let own_fields: Vec<&str> = after_name.split_whitespace().collect();
        // After the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
        let field = |number: usize| -> anyhow::Result<u64> {
            own_fields
                .get(number - 3)
                .context("`/proc/self/stat` is too short")?
                .parse::<i64>()
                .map(|value| value.max(0) as u64)
                .with_context(|| format!("`/proc/self/stat`: field {number} is not a number"))
        };
        let children = field(16)? + field(17)?;
        let own = field(14)? + field(15)? + children;
        Ok(CpuCounters {
            total,
            busy,
            steal,
            own,
            children,
            cores,
        })
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuCounters) -> LoadWindow {
        LoadWindow {
            total: self.total.saturating_sub(earlier.total),
            others: self
                .busy
                .saturating_sub(earlier.busy)
                .saturating_sub(self.own.saturating_sub(earlier.own)),
            steal: self.steal.saturating_sub(earlier.steal),
            cores: self.cores,
        }
    }
}

/// The ticks of one stretch of time, summable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadWindow {
    pub total: u64,
    /// Busy ticks that were neither this process nor its children.
    pub others: u64,
    pub steal: u64,
    pub cores: usize,
}

impl LoadWindow {
    pub fn add(&mut self, other: &LoadWindow) {
        self.total += other.total;
        self.others += other.others;
        self.steal += other.steal;
        self.cores = self.cores.max(other.cores);
    }

    /// Cores other processes kept busy, on average.
    pub fn other_cores(&self) -> f64 {
        self.share(self.others)
    }

    /// Cores taken by the hypervisor, on average.
    pub fn steal_cores(&self) -> f64 {
        self.share(self.steal)
    }

    /// Whether the machine was not quiet: other processes (or the hypervisor) took more
    /// than [`DISTURBED_CORES`] cores on average.
    pub fn disturbed(&self) -> bool {
        self.other_cores() + self.steal_cores() > DISTURBED_CORES
    }

    fn share(&self, ticks: u64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        ticks as f64 / self.total as f64 * self.cores as f64
    }
}

/// Above this many cores taken by others on average, a measurement is disturbed. Background
/// daemons of an idle machine stay well under it; one compile job is far above.
pub const DISTURBED_CORES: f64 = 0.1;

/// Clock ticks per second (`getconf CLK_TCK`; 100, Linux's usual value, if that fails): the
/// unit of `/proc/*/stat` times.
pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse().ok())
        .filter(|&ticks: &u64| ticks > 0)
        .unwrap_or(100)
}

/// `/proc/loadavg`'s three averages, or `?`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT_BEFORE: &str = "cpu  100 0 50 800 10 0 0 0 0 0\ncpu0 50 0 25 400 5 0 0 0 0 0\n\
                               cpu1 50 0 25 400 5 0 0 0 0 0\nintr 1 2 3\n";
    const STAT_AFTER: &str = "cpu  200 0 100 900 10 0 0 50 0 0\ncpu0 100 0 50 450 5 0 0 25 0 0\n\
                              cpu1 100 0 50 450 5 0 0 25 0 0\nintr 1 2 3\n";

    fn self_stat(utime: u64, cutime: u64) -> String {
        // pid (name with spaces) state ppid pgrp session tty tpgid flags minflt cminflt majflt
        // cmajflt utime stime cutime cstime ...
        format!("42 (x task) R 1 42 42 0 -1 0 0 0 0 0 {utime} 0 {cutime} 0 20 0 1 0")
    }

    #[test]
    fn others_are_the_machine_busy_ticks_minus_this_process_and_its_children() {
        let before = CpuCounters::parse(STAT_BEFORE, &self_stat(10, 20)).unwrap();
        assert_eq!(before.cores, 2);
        assert_eq!(before.busy, 150);
        assert_eq!(before.own, 30);
        assert_eq!(before.children, 20);
        let after = CpuCounters::parse(STAT_AFTER, &self_stat(40, 60)).unwrap();
        let window = after.since(&before);
        // busy +150, own +70: others 80 ticks of 300 on 2 cores.
        assert_eq!(window.others, 80);
        assert_eq!(window.total, 300);
        assert!((window.other_cores() - 80.0 / 300.0 * 2.0).abs() < 1e-9);
        assert!((window.steal_cores() - 50.0 / 300.0 * 2.0).abs() < 1e-9);
        assert!(window.disturbed());
        let mut sum = LoadWindow::default();
        sum.add(&window);
        sum.add(&window);
        assert_eq!(sum.others, 160);
    }

    #[test]
    fn a_window_where_only_this_process_ran_is_quiet() {
        let before = CpuCounters::parse(STAT_BEFORE, &self_stat(10, 20)).unwrap();
        let after = CpuCounters::parse(
            "cpu  250 0 50 900 10 0 0 0 0 0\ncpu0 1\ncpu1 1\n",
            &self_stat(60, 120),
        )
        .unwrap();
        let window = after.since(&before);
        assert_eq!(window.others, 0);
        assert!(!window.disturbed());
    }

    #[test]
    fn a_busy_loop_runs_and_stops_and_counts_as_own_time() {
        let before = CpuCounters::read().unwrap();
        let load = BusyLoad::start(1).unwrap();
        assert_eq!(load.threads(), 1);
        // The loop's time is this process's own (however busy the machine, it gets some).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut after = CpuCounters::read().unwrap();
        while after.own < before.own + 5 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
            after = CpuCounters::read().unwrap();
        }
        drop(load);
        assert!(after.own >= before.own + 5, "{before:?} {after:?}");
    }

    #[test]
    fn unreadable_stat_files_are_errors_naming_them() {
        let error = CpuCounters::parse("intr 1\n", &self_stat(0, 0)).unwrap_err();
        assert!(error.to_string().contains("/proc/stat"), "{error}");
        let error = CpuCounters::parse(STAT_BEFORE, "42 x").unwrap_err();
        assert!(error.to_string().contains("/proc/self/stat"), "{error}");
    }
}
