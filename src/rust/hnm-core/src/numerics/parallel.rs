//! Work shared among threads: the bootstraps' refits, the profiles of a general fit and the
//! block pass.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::{HnmError, Result};
use crate::numerics::interrupt::{Checkpoint, Interrupt};
use crate::numerics::memory::with_capacity;

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
/// `interrupt` while it waits and sets `stop` (which the tasks read) when asked. A task's
/// `None` is a task that failed on its own; an `Err` of `init` or of a task (memory that ran
/// out) stops every thread and is the result. The bootstraps' refits, the profiles of a
/// general fit and the block pass run through it.
///
/// # Errors
/// `TooLarge` when the results do not fit in memory; the first error of `init` or `task`;
/// `Optimizer` when a thread cannot start or panics; `Interrupted` when `interrupt` asks to
/// stop.
pub(crate) fn in_parallel<S, T: Send>(
    count: usize, threads: usize, interrupt: &dyn Interrupt, init: impl Fn() -> Result<S> + Sync,
    task: impl Fn(&mut S, usize, &AtomicBool) -> Result<Option<T>> + Sync,
) -> Result<Vec<Option<T>>> {
    const RESULTS: &str = "the results of the parallel tasks";
    // Filled within its exact capacity by the threads' blocks.
    let mut all = with_capacity(&[count], RESULTS)?;
    let block = count.div_ceil(worker_threads(threads, count)).max(1);
    let stop = AtomicBool::new(false);
    let finished = AtomicUsize::new(0);
    let waiting = std::thread::current();
    std::thread::scope(|scope| {
        let mut workers = Vec::new();
        for first in (0..count).step_by(block) {
            let (init, task, stop, finished, waiting) = (&init, &task, &stop, &finished, waiting.clone());
            let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                let run = || -> Result<Vec<Option<T>>> {
                    let mut state = init()?;
                    let tasks = first..(first + block).min(count);
                    let mut out = with_capacity(&[tasks.len()], RESULTS)?;
                    for i in tasks {
                        out.push(if stop.load(Ordering::Relaxed) { None } else { task(&mut state, i, stop)? });
                    }
                    Ok(out)
                };
                let out = run();
                if out.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
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
        // The scope joins the other threads before an error is returned.
        for worker in workers {
            all.extend(worker.join().map_err(|_| HnmError::Optimizer("a worker thread panicked".into()))??);
        }
        Ok(())
    })?;
    if stop.load(Ordering::Relaxed) {
        return Err(HnmError::Interrupted);
    }
    Ok(all)
}
