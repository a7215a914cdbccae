//! Mapping a slice on scoped threads: [`parallel_map`] with the results in the slice's order,
//! and [`pipeline`], two stages of different widths, results as they come.
//!
//! Work is handed out one item at a time through an atomic index, so one slow item does not
//! hold up a whole chunk. A panic in `f` is re-raised on the calling thread with its payload.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Maps `f` over `items` on up to `threads` scoped threads; the results keep the order of
/// `items`. One thread (or one item) maps on the calling thread.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    map_until(items, threads, &f, &|_| false)
        .into_iter()
        .flatten()
        .collect()
}

/// Like [`parallel_map`] for a fallible `f`: after the first failure no further item is
/// started, and the error returned is the one of the first failing item in `items` order
/// (every item before it was started, so it is never hidden by a later one).
pub fn try_parallel_map<T: Sync, R: Send, E: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    // Items are handed out in order, so an item that was never started comes after a failed
    // one: the first `Err` in order precedes every gap.
    map_until(items, threads, &f, &Result::is_err)
        .into_iter()
        .flatten()
        .collect()
}

/// Maps `f` over `items` until a result for which `stop` holds; items not started by then are
/// `None`. Each worker collects its own results; they are put in order after the join.
fn map_until<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: &(impl Fn(&T) -> R + Sync),
    stop: &(impl Fn(&R) -> bool + Sync),
) -> Vec<Option<R>> {
    let workers = threads.min(items.len());
    let mut results: Vec<Option<R>> = Vec::with_capacity(items.len());
    results.resize_with(items.len(), || None);
    if workers <= 1 {
        for (slot, item) in results.iter_mut().zip(items) {
            let result = f(item);
            let stopping = stop(&result);
            *slot = Some(result);
            if stopping {
                break;
            }
        }
        return results;
    }
    let next_index = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next_index.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(index) else {
                            return done;
                        };
                        let result = f(item);
                        if stop(&result) {
                            // Hand out no more work.
                            next_index.store(items.len(), Ordering::Relaxed);
                        }
                        done.push((index, result));
                    }
                })
            })
            .collect();
        for handle in handles {
            let done = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            for (index, result) in done {
                results[index] = Some(result);
            }
        }
    });
    results
}

/// The next item of a queue several threads take from; `Err` once every sender is gone and
/// the queue is empty.
pub fn receive<T>(
    queue: &std::sync::Mutex<std::sync::mpsc::Receiver<T>>,
) -> Result<T, std::sync::mpsc::RecvError> {
    queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .recv()
}

/// Maps `first` over `items` on up to `first_threads` scoped threads and hands each `Some`
/// result to `then` on `then_threads` threads as soon as it is ready: a stage wide enough to
/// keep a network's round trips in flight feeding a narrower one that uses the CPU and the
/// disk. The results come in no particular order. A panic in either is re-raised on the
/// calling thread.
pub fn pipeline<T: Sync, M: Send, R: Send>(
    items: &[T],
    (first_threads, first): (usize, impl Fn(&T) -> Option<M> + Sync),
    (then_threads, then): (usize, impl Fn(&T, M) -> R + Sync),
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let (sender, receiver) = std::sync::mpsc::channel::<(usize, M)>();
    let receiver = std::sync::Mutex::new(receiver);
    std::thread::scope(|scope| {
        for _ in 0..first_threads.clamp(1, items.len().max(1)) {
            let (sender, next, first) = (sender.clone(), &next, &first);
            scope.spawn(move || {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else { break };
                    if let Some(made) = first(item)
                        && sender.send((index, made)).is_err()
                    {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let workers: Vec<_> = (0..then_threads.max(1))
            .map(|_| {
                let (receiver, then) = (&receiver, &then);
                scope.spawn(move || {
                    let mut out = Vec::new();
                    while let Ok((index, made)) = receive(receiver) {
                        out.push(then(&items[index], made));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|payload| std::panic::resume_unwind(payload))
            })
            .collect()
    })
}

/// Drops `value` on a thread of its own, off the caller's path: freeing a run's plan and cache
/// entries took 14 ms of a fully cached run of 500 tasks, and a process that exits first never
/// pays for it (rust-analyzer drops its large structures the same way). Dropped on the caller's
/// thread when no thread can be started.
pub fn drop_in_background<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new()
        .name("drop".into())
        .spawn(move || drop(value));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    #[test]
    fn drop_in_background_drops_on_another_thread() {
        struct Sends(std::sync::mpsc::Sender<std::thread::ThreadId>);
        impl Drop for Sends {
            fn drop(&mut self) {
                let _ = self.0.send(std::thread::current().id());
            }
        }
        let (sender, receiver) = std::sync::mpsc::channel();
        drop_in_background(Sends(sender));
        let dropped_on = receiver
            .recv_timeout(Duration::from_secs(10))
            .expect("dropped");
        assert_ne!(dropped_on, std::thread::current().id());
    }

    #[test]
    fn a_pipeline_hands_every_made_item_to_the_second_stage() {
        let items: Vec<u32> = (0..100).collect();
        let mut out = pipeline(
            &items,
            (16, |&n: &u32| (n % 3 != 0).then_some(n * 10)),
            (3, |&n: &u32, made: u32| (n, made)),
        );
        out.sort_unstable();
        let expected: Vec<(u32, u32)> = items
            .iter()
            .filter(|&&n| n % 3 != 0)
            .map(|&n| (n, n * 10))
            .collect();
        assert_eq!(out, expected);
        assert!(
            pipeline(
                &[] as &[u32],
                (4, |_: &u32| Some(1)),
                (2, |_: &u32, m: i32| m)
            )
            .is_empty()
        );
    }

    #[test]
    fn keeps_the_order_of_the_items_whatever_the_thread_count() {
        let items: Vec<u64> = (0..100).collect();
        let expected: Vec<u64> = items.iter().map(|i| i * i).collect();
        for threads in [0, 1, 2, 7, 200] {
            assert_eq!(parallel_map(&items, threads, |i| i * i), expected);
        }
        assert!(parallel_map(&[] as &[u64], 4, |i| *i).is_empty());
    }

    #[test]
    fn runs_on_several_threads() {
        let threads = Mutex::new(std::collections::HashSet::new());
        let items: Vec<u32> = (0..8).collect();
        parallel_map(&items, 4, |_| {
            threads.lock().unwrap().insert(std::thread::current().id());
            std::thread::sleep(Duration::from_millis(20));
        });
        assert!(threads.into_inner().unwrap().len() > 1);
    }

    #[test]
    fn try_returns_every_result_when_nothing_fails() {
        let items: Vec<u32> = (0..50).collect();
        let doubled = try_parallel_map(&items, 4, |i| Ok::<_, String>(i * 2)).unwrap();
        assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn try_returns_the_first_failure_in_item_order() {
        let items: Vec<u32> = (0..200).collect();
        for threads in [1, 3, 16] {
            let error = try_parallel_map(&items, threads, |&i| {
                if i == 150 {
                    // A later failure that finishes first must not win.
                    return Err(format!("item {i}"));
                }
                if i == 40 {
                    std::thread::sleep(Duration::from_millis(30));
                    return Err(format!("item {i}"));
                }
                Ok(i)
            })
            .unwrap_err();
            assert_eq!(error, "item 40", "with {threads} threads");
        }
    }

    #[test]
    fn try_starts_no_item_after_a_failure_on_one_thread() {
        let started = Mutex::new(Vec::new());
        let items: Vec<u32> = (0..10).collect();
        let result = try_parallel_map(&items, 1, |&i| {
            started.lock().unwrap().push(i);
            if i == 3 { Err(i) } else { Ok(i) }
        });
        assert_eq!(result, Err(3));
        assert_eq!(started.into_inner().unwrap(), [0, 1, 2, 3]);
    }

    #[test]
    fn a_panic_reaches_the_caller_with_its_message() {
        let items: Vec<u32> = (0..8).collect();
        let panic = std::panic::catch_unwind(|| {
            parallel_map(&items, 4, |&i| {
                assert!(i != 5, "item {i} failed");
                i
            })
        })
        .unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(message.contains("item 5 failed"), "{message}");
    }
}
