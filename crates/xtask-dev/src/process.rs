//! One running app: spawned as the leader of its own process group (process-wrap's
//! `ProcessGroup`), its stdout and stderr copied line by line with an `app | ` prefix, stopped
//! with SIGTERM to the whole group, a grace period, then SIGKILL to the group.
//!
//! Invariants: every process this module starts is in a group it signals as a whole; a stop
//! returns only when no process of the group is left (or reports which pgid it gave up on);
//! dropping an `AppProcess` that was not stopped SIGKILLs its group.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use command_fds::{CommandFdExt, FdMapping};
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use process_wrap::std::{ChildWrapper, CommandWrap, ProcessGroup};

/// The file descriptor a handed-over listening socket has in the child (systemd's
/// `SD_LISTEN_FDS_START`).
pub const LISTEN_FD: i32 = 3;

/// How often a stop checks whether the group is gone: first after [`STOP_POLL_FIRST`], then
/// twice as long each time up to this (an app that exits at once is seen within a
/// millisecond, one that drains for seconds costs a check every 5 ms).
const STOP_POLL: Duration = Duration::from_millis(5);
const STOP_POLL_FIRST: Duration = Duration::from_millis(1);
/// How long to wait for the kernel to finish off a SIGKILLed group.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// What to start.
#[derive(Debug)]
pub struct SpawnOptions<'a> {
    pub name: &'a str,
    pub binary: &'a Path,
    pub cwd: &'a Path,
    /// Set on top of the inherited environment.
    pub env: &'a BTreeMap<String, String>,
    /// Handed over as fd 3 with `LISTEN_FDS=1` (systemd / listenfd protocol).
    pub listener: Option<&'a TcpListener>,
}

/// How a stop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// The leader's exit status, when it was ours to collect.
    pub status: Option<ExitStatus>,
    /// The group outlived the grace period and was SIGKILLed.
    pub killed: bool,
    pub took: Duration,
}

/// A running app (the leader of its process group).
pub struct AppProcess {
    child: Box<dyn ChildWrapper>,
    pid: u32,
    exited: Option<ExitStatus>,
    copiers: Vec<JoinHandle<()>>,
    stopped: bool,
}

impl std::fmt::Debug for AppProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppProcess")
            .field("pid", &self.pid)
            .finish()
    }
}

impl AppProcess {
    pub fn spawn(options: &SpawnOptions<'_>) -> anyhow::Result<AppProcess> {
        let mut command = Command::new(options.binary);
        command
            .current_dir(options.cwd)
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_FDS_FIRST_FD")
            .envs(options.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(listener) = options.listener {
            let fd = listener
                .try_clone()
                .context("failed to duplicate the listening socket")?;
            command
                .fd_mappings(vec![FdMapping {
                    parent_fd: fd.into(),
                    child_fd: LISTEN_FD,
                }])
                .context("failed to hand over the listening socket")?;
            command.env("LISTEN_FDS", "1");
        }
        let mut wrapped = CommandWrap::from(command);
        wrapped.wrap(ProcessGroup::leader());
        let mut child = wrapped
            .spawn()
            .with_context(|| format!("failed to start `{}`", options.binary.display()))?;
        let pid = child.id();
        let mut copiers = Vec::new();
        if let Some(stdout) = child.stdout().take() {
            copiers.push(copy_lines(options.name, stdout, Stream::Stdout));
        }
        if let Some(stderr) = child.stderr().take() {
            copiers.push(copy_lines(options.name, stderr, Stream::Stderr));
        }
        Ok(AppProcess {
            child,
            pid,
            exited: None,
            copiers,
            stopped: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The leader's exit status once it has exited (reaping it).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exited = Some(status);
        }
        self.exited
    }

    /// SIGTERM to the group, up to `grace` for every member to exit, then SIGKILL to the group.
    pub fn stop(mut self, grace: Duration) -> anyhow::Result<Stopped> {
        let started = Instant::now();
        self.stopped = true;
        let group = Pid::from_raw(self.pid as i32);
        let mut killed = false;
        if signal_group(group, Signal::SIGTERM)? {
            let deadline = started + grace;
            let mut poll = STOP_POLL_FIRST;
            while !self.group_gone(group) {
                if Instant::now() >= deadline {
                    killed = signal_group(group, Signal::SIGKILL)?;
                    break;
                }
                std::thread::sleep(poll);
                poll = (poll * 2).min(STOP_POLL);
            }
            let deadline = Instant::now() + KILL_WAIT;
            while !self.group_gone(group) {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "process group {group} survived SIGKILL for {KILL_WAIT:?}"
                );
                std::thread::sleep(STOP_POLL);
            }
        }
        let status = self.try_exit();
        for copier in self.copiers.drain(..) {
            let _copier_panicked = copier.join();
        }
        Ok(Stopped {
            status,
            killed,
            took: started.elapsed(),
        })
    }

    /// Whether no live process is left in the group (reaping the leader). Members orphaned by
    /// the leader's exit are reaped by init, so a group of zombies counts as gone.
    fn group_gone(&mut self, group: Pid) -> bool {
        self.try_exit();
        matches!(killpg(group, None), Err(Errno::ESRCH)) || only_zombies(group)
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Sends `signal` to the group; `false` if the group no longer exists.
fn signal_group(group: Pid, signal: Signal) -> anyhow::Result<bool> {
    match killpg(group, signal) {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(error) => Err(anyhow::anyhow!(
            "failed to send {signal} to process group {group}: {error}"
        )),
    }
}

/// Whether every process of `group` still listed in `/proc` is a zombie (dead, waiting for a
/// parent that is not us to reap it).
fn only_zombies(group: Pid) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`; comm may contain spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.get(2) == Some(&group.as_raw().to_string().as_str())
            && fields.first() != Some(&"Z")
        {
            return false;
        }
    }
    true
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Copies `pipe` to our stdout or stderr, one `name | line` at a time.
fn copy_lines(name: &str, pipe: impl Read + Send + 'static, stream: Stream) -> JoinHandle<()> {
    let prefix = format!("{name} | ");
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if !line.ends_with(b"\n") {
                line.push(b'\n');
            }
            let mut text = prefix.clone().into_bytes();
            text.extend_from_slice(&line);
            // A closed terminal is no reason to stop the app.
            let _ = match stream {
                Stream::Stdout => std::io::stdout().lock().write_all(&text),
                Stream::Stderr => std::io::stderr().lock().write_all(&text),
            };
        }
    })
}
