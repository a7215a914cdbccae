//! The run as a Chrome trace (the Trace Event Format's JSON object form), as turbo's
//! `--profile` writes it: Perfetto (ui.perfetto.dev) and `chrome://tracing` load it. Each task
//! is a complete event (`"ph": "X"`) on a lane; tasks that overlap in time go on different
//! lanes (each lane a "thread"), so every lane is a plain sequence, as the viewers expect.

use serde::Serialize;

use crate::{RunData, TaskData};

/// `run` as a Chrome trace: JSON text.
pub fn chrome_trace(run: &RunData) -> String {
    let lanes = lanes(&run.tasks);
    let lane_count = lanes.iter().max().map_or(0, |&l| l + 1);
    let lane_names: Vec<String> = (1..=lane_count).map(|l| format!("lane {l}")).collect();
    let mut events = vec![
        metadata("process_name", 0, &run.title),
        metadata("thread_name", 0, "xtask"),
        Event {
            name: "planning",
            cat: "xtask",
            ph: "X",
            ts: 0,
            dur: Some(run.plan_ms * 1000),
            pid: 1,
            tid: 0,
            args: Args::default(),
        },
    ];
    for (lane, name) in lane_names.iter().enumerate() {
        events.push(metadata("thread_name", lane + 1, name));
    }
    for (task, lane) in run.tasks.iter().zip(lanes) {
        events.push(Event {
            name: &task.id,
            cat: task.status.word(),
            ph: "X",
            ts: task.start_ms * 1000,
            dur: Some(task.duration_ms * 1000),
            pid: 1,
            tid: lane + 1,
            args: Args {
                status: Some(task.status.word()),
                hash: Some(&task.hash),
                saved_ms: (task.saved_ms > 0).then_some(task.saved_ms),
                why: task.why.as_ref().map(|w| w.changes.as_slice()),
                name: None,
            },
        });
    }
    let trace = Trace {
        trace_events: events,
        display_time_unit: "ms",
        other_data: OtherData {
            command: &run.title,
            started: &run.started,
            duration_ms: run.duration_ms,
            saved_ms: run.saved_ms,
        },
    };
    // Plain data types: serialising cannot fail.
    let mut text = serde_json::to_string(&trace).unwrap_or_default();
    text.push('\n');
    text
}

/// Each task's lane: the first lane whose last task ended by the time it starts, tasks taken
/// by start time (interval partitioning, so no two tasks of a lane overlap).
pub(crate) fn lanes(tasks: &[TaskData]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    order.sort_by_key(|&i| (tasks[i].start_ms, i));
    let mut lane_ends: Vec<u64> = Vec::new();
    let mut lanes = vec![0; tasks.len()];
    for i in order {
        let (start, end) = (tasks[i].start_ms, tasks[i].start_ms + tasks[i].duration_ms);
        let lane = match lane_ends.iter().position(|&e| e <= start) {
            Some(lane) => lane,
            None => {
                lane_ends.push(0);
                lane_ends.len() - 1
            }
        };
        lane_ends[lane] = end;
        lanes[i] = lane;
    }
    lanes
}

fn metadata<'a>(name: &'a str, tid: usize, value: &'a str) -> Event<'a> {
    Event {
        name,
        cat: "__metadata",
        ph: "M",
        ts: 0,
        dur: None,
        pid: 1,
        tid,
        args: Args {
            name: Some(value),
            ..Args::default()
        },
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Trace<'a> {
    trace_events: Vec<Event<'a>>,
    display_time_unit: &'static str,
    other_data: OtherData<'a>,
}

#[derive(Serialize)]
struct OtherData<'a> {
    command: &'a str,
    started: &'a str,
    duration_ms: u64,
    saved_ms: u64,
}

/// One trace event; times in microseconds.
#[derive(Serialize)]
struct Event<'a> {
    name: &'a str,
    cat: &'a str,
    ph: &'static str,
    ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<u64>,
    pid: u32,
    tid: usize,
    args: Args<'a>,
}

#[derive(Default, Serialize)]
struct Args<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    saved_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<&'a [String]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(start_ms: u64, duration_ms: u64) -> TaskData {
        TaskData {
            id: format!("t{start_ms}:{duration_ms}"),
            start_ms,
            duration_ms,
            ..TaskData::default()
        }
    }

    #[test]
    fn overlapping_tasks_get_different_lanes_and_a_lane_is_reused_once_free() {
        let tasks = [task(0, 100), task(10, 50), task(60, 30), task(100, 10)];
        assert_eq!(lanes(&tasks), [0, 1, 1, 0]);
    }

    #[test]
    fn no_two_tasks_of_a_lane_overlap() {
        let tasks: Vec<TaskData> = (0..200u64)
            .map(|i| task((i * 37) % 1000, (i * 53) % 300))
            .collect();
        let lanes = lanes(&tasks);
        for a in 0..tasks.len() {
            for b in a + 1..tasks.len() {
                if lanes[a] != lanes[b] {
                    continue;
                }
                let (x, y) = (&tasks[a], &tasks[b]);
                let overlap = x.start_ms < y.start_ms + y.duration_ms
                    && y.start_ms < x.start_ms + x.duration_ms;
                assert!(!overlap, "{} and {} share lane {}", x.id, y.id, lanes[a]);
            }
        }
    }
}
