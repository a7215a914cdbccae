//! When a burst of file events becomes a build: a pure state machine between the watcher and
//! the loop (no IO, no clock: every call takes the instant it is about).
//!
//! An editor's save is several events, and the file is complete only at the last of them
//! (recorded with inotify on Linux, see ARCHITECTURE.md, `xtask-dev`):
//! - an in-place write (vim, `std::fs::write`) is `MODIFY` (the truncation), `MODIFY` (the
//!   data), then `CLOSE_WRITE`; vim fsyncs in between, up to 7 ms;
//! - a rename save (`sed -i`, a temporary file and `mv`, JetBrains' safe write) writes and
//!   closes a temporary file, then renames it over the input (`MOVED_TO`), the old copy
//!   moved away or deleted around it, all within microseconds.
//!
//! So an event is read as one of three marks for its path: [`Mark::Writing`] (created or
//! modified, not yet closed: the content may be partial), [`Mark::Written`] (closed after
//! writing, or renamed into place: complete) and [`Mark::Gone`] (deleted or moved away).
//! A burst is **settled** once some path that was a known input (listed as one at the last
//! look, or a global input) is `Written` and no known input is `Writing`; a settled burst is
//! due [`Settle::grace`] after the last event on a known input (so the trailing clean-up of
//! the same save joins it). Every other burst (a new file, a deletion, a platform without
//! close events such as macOS) is due after [`Settle::quiet`] without events, as a plain
//! debounce, and never later than [`Settle::max_wait`] after its first event (a file written
//! all the time, like a log, cannot hold a build back).
//!
//! Invariant: the marks decide only WHEN a burst is handed over, never whether a path counts:
//! every path of every event is in the burst, and an event after the hand-over starts a new
//! burst (a follow-up build). Starting early can cost an extra build, never a missed change.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RenameMode};

/// What an event says about its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Created or modified and not closed yet: the content may be partial.
    Writing,
    /// Closed after writing, or renamed into place: the content is complete.
    Written,
    /// Deleted, or moved away.
    Gone,
}

/// The timings of [`Burst::due`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settle {
    /// After the last event on a known input of a settled burst.
    pub grace: Duration,
    /// Without any event, for a burst that never settles (`--debounce`).
    pub quiet: Duration,
    /// After the first event, at the latest.
    pub max_wait: Duration,
}

/// The grace of a settled burst: the events of one save arrive within microseconds of each
/// other once its last write is closed (see the module doc).
pub const GRACE: Duration = Duration::from_millis(2);

impl Settle {
    /// `quiet` is the `--debounce`; the longest wait is ten of them.
    pub fn new(quiet: Duration) -> Settle {
        Settle {
            grace: GRACE.min(quiet),
            quiet,
            max_wait: quiet.saturating_mul(10),
        }
    }
}

/// One event as the watcher reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEvent {
    pub kind: EventKind,
    pub paths: Vec<PathBuf>,
    /// The watcher lost events (its queue overflowed): anything may have changed.
    pub rescan: bool,
}

/// The marks an event gives its paths, in order; empty for events that cannot change a
/// file's content (reads, opens, metadata-only changes such as `touch`: the hash covers
/// content only).
pub fn marks(kind: &EventKind, paths: &[PathBuf]) -> Vec<(PathBuf, Mark)> {
    let all = |mark: Mark| paths.iter().map(|p| (p.clone(), mark)).collect();
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => all(Mark::Written),
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => Vec::new(),
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => all(Mark::Written),
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => all(Mark::Gone),
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            let mut marked = Vec::new();
            if let [from, to, ..] = paths {
                marked.push((from.clone(), Mark::Gone));
                marked.push((to.clone(), Mark::Written));
            }
            marked
        }
        EventKind::Remove(_) | EventKind::Create(CreateKind::Folder) => all(Mark::Gone),
        _ => all(Mark::Writing),
    }
}

/// The events since the last hand-over.
#[derive(Debug, Clone)]
pub struct Burst {
    first_seen: Instant,
    last_event: Instant,
    /// The last event on a known input.
    last_known: Option<Instant>,
    /// Every path of every counted event, in arrival order of first sight.
    paths: Vec<PathBuf>,
    seen: BTreeSet<PathBuf>,
    /// The last mark of each known input.
    known: BTreeMap<PathBuf, Mark>,
    rescan: bool,
}

/// A burst handed over to the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    pub paths: Vec<PathBuf>,
    /// When the first event of the burst arrived.
    pub first_seen: Instant,
    /// The watcher lost events: treat everything as changed.
    pub rescan: bool,
    /// The burst settled (it did not wait for the quiet time).
    pub settled: bool,
}

impl Burst {
    /// Adds `event`, seen `at`; `is_known_input` says whether a path was an input at the
    /// last look. Returns whether the event counted (see [`marks`]).
    pub fn add(
        burst: &mut Option<Burst>,
        event: &FileEvent,
        at: Instant,
        is_known_input: impl Fn(&std::path::Path) -> bool,
    ) -> bool {
        let marked = marks(&event.kind, &event.paths);
        if marked.is_empty() && !event.rescan {
            return false;
        }
        let burst = burst.get_or_insert_with(|| Burst {
            first_seen: at,
            last_event: at,
            last_known: None,
            paths: Vec::new(),
            seen: BTreeSet::new(),
            known: BTreeMap::new(),
            rescan: false,
        });
        burst.last_event = at;
        burst.rescan |= event.rescan;
        for (path, mark) in marked {
            if burst.seen.insert(path.clone()) {
                burst.paths.push(path.clone());
            }
            if is_known_input(&path) {
                burst.last_known = Some(at);
                burst.known.insert(path, mark);
            }
        }
        true
    }

    /// Whether the burst is settled: a known input was written and none is being written.
    pub fn settled(&self) -> bool {
        !self.rescan
            && self.known.values().any(|mark| *mark == Mark::Written)
            && !self.known.values().any(|mark| *mark == Mark::Writing)
    }

    /// When the burst is due (see the module doc).
    pub fn due(&self, settle: &Settle) -> Instant {
        let latest = self.first_seen + settle.max_wait;
        let due = match self.last_known {
            Some(last_known) if self.settled() => last_known + settle.grace,
            _ => self.last_event + settle.quiet,
        };
        due.min(latest)
    }

    /// The burst, if it is due at `now`.
    pub fn take_due(burst: &mut Option<Burst>, settle: &Settle, now: Instant) -> Option<Handover> {
        if burst.as_ref()?.due(settle) > now {
            return None;
        }
        let burst = burst.take()?;
        let settled = burst.settled();
        Some(Handover {
            paths: burst.paths,
            first_seen: burst.first_seen,
            rescan: burst.rescan,
            settled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{DataChange, RemoveKind};

    const ROOT: &str = "/ws/apps/api/src";

    fn path(name: &str) -> PathBuf {
        PathBuf::from(ROOT).join(name)
    }

    fn event(kind: EventKind, names: &[&str]) -> FileEvent {
        FileEvent {
            kind,
            paths: names.iter().map(|n| path(n)).collect(),
            rescan: false,
        }
    }

    const MODIFY: EventKind = EventKind::Modify(ModifyKind::Data(DataChange::Any));
    const CLOSE_WRITE: EventKind = EventKind::Access(AccessKind::Close(AccessMode::Write));
    const CREATE: EventKind = EventKind::Create(CreateKind::File);
    const DELETE: EventKind = EventKind::Remove(RemoveKind::File);
    const MOVED_FROM: EventKind = EventKind::Modify(ModifyKind::Name(RenameMode::From));
    const MOVED_TO: EventKind = EventKind::Modify(ModifyKind::Name(RenameMode::To));
    const MOVED: EventKind = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
    const OPEN: EventKind = EventKind::Access(AccessKind::Open(AccessMode::Any));

    /// Replays `events`, one every `gap` from `start`, with `main.rs` the only known input;
    /// returns the hand-over and how long after the first event it was due.
    fn replay(events: &[FileEvent], gap: Duration) -> (Handover, Duration) {
        let settle = Settle::new(Duration::from_millis(30));
        let known = |p: &std::path::Path| p == path("main.rs");
        let start = Instant::now();
        let mut burst = None;
        let mut at = start;
        for event in events {
            assert!(
                Burst::take_due(&mut burst, &settle, at).is_none(),
                "handed over before {event:?}"
            );
            Burst::add(&mut burst, event, at, known);
            at += gap;
        }
        let due = burst.as_ref().expect("a burst").due(&settle);
        let handover = Burst::take_due(&mut burst, &settle, due).expect("due");
        assert!(burst.is_none());
        (handover, due - start)
    }

    #[test]
    fn an_in_place_save_is_due_a_grace_after_its_close() {
        // vim's default and VS Code: truncate, write, fsync, close; the swap file is not an
        // input and does not hold the burst back.
        let (handover, due) = replay(
            &[
                event(OPEN, &["main.rs"]),
                event(MODIFY, &["main.rs"]),
                event(MODIFY, &["main.rs"]),
                event(CLOSE_WRITE, &["main.rs"]),
                event(MODIFY, &[".main.rs.swp"]),
            ],
            Duration::from_micros(100),
        );
        assert!(handover.settled);
        assert_eq!(handover.paths, [path("main.rs"), path(".main.rs.swp")]);
        assert_eq!(due, Duration::from_micros(300) + GRACE);
    }

    #[test]
    fn a_write_that_is_not_closed_waits_for_the_quiet_time() {
        // The first MODIFY of an in-place write is the truncation: the file may be empty.
        let (handover, due) = replay(&[event(MODIFY, &["main.rs"])], Duration::ZERO);
        assert!(!handover.settled);
        assert_eq!(due, Duration::from_millis(30));
    }

    #[test]
    fn a_safe_write_is_due_once_the_new_file_is_in_place() {
        // JetBrains: temp file written and closed, the original moved away, the temp file
        // moved over it, the old copy deleted.
        let (handover, due) = replay(
            &[
                event(CREATE, &["main.rs___jb_tmp___"]),
                event(MODIFY, &["main.rs___jb_tmp___"]),
                event(CLOSE_WRITE, &["main.rs___jb_tmp___"]),
                event(MOVED_FROM, &["main.rs"]),
                event(MOVED_TO, &["main.rs___jb_old___"]),
                event(MOVED, &["main.rs", "main.rs___jb_old___"]),
                event(MOVED_FROM, &["main.rs___jb_tmp___"]),
                event(MOVED_TO, &["main.rs"]),
                event(MOVED, &["main.rs___jb_tmp___", "main.rs"]),
                event(DELETE, &["main.rs___jb_old___"]),
            ],
            Duration::from_micros(50),
        );
        assert!(handover.settled);
        assert_eq!(due, Duration::from_micros(8 * 50) + GRACE);
        assert_eq!(handover.paths.len(), 3);
    }

    #[test]
    fn a_backup_rename_save_is_not_due_while_the_input_is_missing() {
        // vim with `backupcopy=no`: the original moved to `main.rs~`, a new `main.rs` written.
        let settle = Settle::new(Duration::from_millis(30));
        let known = |p: &std::path::Path| p == path("main.rs");
        let start = Instant::now();
        let mut burst = None;
        Burst::add(
            &mut burst,
            &event(MOVED, &["main.rs", "main.rs~"]),
            start,
            known,
        );
        // Moved away and nothing written: not settled, a plain debounce.
        assert!(!burst.as_ref().unwrap().settled());
        Burst::add(&mut burst, &event(CREATE, &["main.rs"]), start, known);
        Burst::add(&mut burst, &event(MODIFY, &["main.rs"]), start, known);
        // vim's fsync: 7 ms with the file open.
        let closed = start + Duration::from_millis(7);
        assert!(Burst::take_due(&mut burst, &settle, closed).is_none());
        Burst::add(&mut burst, &event(CLOSE_WRITE, &["main.rs"]), closed, known);
        assert!(Burst::take_due(&mut burst, &settle, closed).is_none());
        let handover = Burst::take_due(&mut burst, &settle, closed + GRACE).unwrap();
        assert!(handover.settled);
    }

    #[test]
    fn new_files_and_deletions_wait_for_the_quiet_time() {
        let (handover, due) = replay(
            &[
                event(CREATE, &["new.rs"]),
                event(CLOSE_WRITE, &["new.rs"]),
                event(DELETE, &["old.rs"]),
            ],
            Duration::from_millis(1),
        );
        assert!(!handover.settled);
        assert_eq!(due, Duration::from_millis(2 + 30));
    }

    #[test]
    fn events_that_change_no_content_start_nothing() {
        let mut burst = None;
        let metadata = EventKind::Modify(ModifyKind::Metadata(notify::event::MetadataKind::Any));
        for kind in [OPEN, metadata] {
            assert!(!Burst::add(
                &mut burst,
                &event(kind, &["main.rs"]),
                Instant::now(),
                |_| true
            ));
        }
        assert!(burst.is_none());
    }

    #[test]
    fn a_lost_event_queue_is_never_settled() {
        let mut burst = None;
        let start = Instant::now();
        let lost = FileEvent {
            kind: EventKind::Other,
            paths: Vec::new(),
            rescan: true,
        };
        Burst::add(&mut burst, &lost, start, |_| true);
        Burst::add(&mut burst, &event(CLOSE_WRITE, &["main.rs"]), start, |_| {
            true
        });
        let burst = burst.unwrap();
        assert!(!burst.settled());
        assert_eq!(
            burst.due(&Settle::new(Duration::from_millis(30))),
            start + Duration::from_millis(30)
        );
    }

    #[test]
    fn a_file_written_all_the_time_delays_a_burst_at_most_the_longest_wait() {
        let settle = Settle::new(Duration::from_millis(30));
        let start = Instant::now();
        let mut burst = None;
        let mut at = start;
        let mut handed = None;
        while handed.is_none() {
            Burst::add(&mut burst, &event(MODIFY, &["debug.log"]), at, |_| false);
            at += Duration::from_millis(10);
            handed = Burst::take_due(&mut burst, &settle, at);
        }
        assert_eq!(at - start, settle.max_wait);
    }
}
