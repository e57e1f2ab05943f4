//! Work shared among threads: the bootstraps' refits, the profiles of a general fit and the
//! block pass.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::{with_capacity, HnmError, Result};
use crate::interrupt::{Checkpoint, Interrupt};

/// The threads to use for `replicates` refits when `requested` were asked for (R's
/// `getOption("hnm.threads")`, which can be anything): between 1 and the smaller of the
/// machine's available parallelism and the number of replicates.
pub(crate) fn worker_threads(requested: usize, replicates: usize) -> usize {
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    requested.min(available).min(replicates).max(1)
}

/// `task(state, i, stop)` for i in 0..count on up to `threads` scoped threads, in order, each
/// thread with its own `state` from `init()` (storage its tasks reuse: a task's result must
/// not depend on what the thread's earlier tasks left there); the calling thread asks
/// `interrupt` while it waits and sets `stop` (which the tasks read) when asked. The
/// bootstraps' refits, the profiles of a general fit and the block pass run through it.
///
/// # Errors
/// `TooLarge` when the results do not fit in memory; `Optimizer` when a thread cannot start
/// or panics; `Interrupted` when `interrupt` asks to stop.
pub(crate) fn in_parallel<S, T: Send>(
    count: usize,
    threads: usize,
    interrupt: &dyn Interrupt,
    init: impl Fn() -> S + Sync,
    task: impl Fn(&mut S, usize, &AtomicBool) -> Option<T> + Sync,
) -> Result<Vec<Option<T>>> {
    let mut all = with_capacity(count, "the results of the parallel tasks")?;
    let block = count.div_ceil(worker_threads(threads, count)).max(1);
    let stop = AtomicBool::new(false);
    let finished = AtomicUsize::new(0);
    let waiting = std::thread::current();
    std::thread::scope(|scope| {
        let mut workers = Vec::new();
        for first in (0..count).step_by(block) {
            let (init, task, stop, finished, waiting) = (&init, &task, &stop, &finished, waiting.clone());
            let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                let mut state = init();
                let out: Vec<Option<T>> = (first..(first + block).min(count))
                    .map(|i| if stop.load(Ordering::Relaxed) { None } else { task(&mut state, i, stop) })
                    .collect();
                finished.fetch_add(1, Ordering::SeqCst);
                waiting.unpark();
                out
            });
            match spawned {
                Ok(worker) => workers.push(worker),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(HnmError::Optimizer(format!("a worker thread could not be started ({e})")));
                }
            }
        }
        let mut checkpoint = Checkpoint::new(interrupt);
        while finished.load(Ordering::SeqCst) < workers.len() {
            std::thread::park_timeout(Checkpoint::INTERVAL);
            if !stop.load(Ordering::Relaxed) && checkpoint.check_timed().is_err() {
                stop.store(true, Ordering::Relaxed);
            }
        }
        for worker in workers {
            all.extend(worker.join().map_err(|_| HnmError::Optimizer("a worker thread panicked".into()))?);
        }
        Ok(())
    })?;
    if stop.load(Ordering::Relaxed) {
        return Err(HnmError::Interrupted);
    }
    Ok(all)
}
