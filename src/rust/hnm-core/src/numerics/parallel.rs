//! Work shared among threads: the bootstraps' refits, the profiles of a general fit and the
//! passes over the rows.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::data::blocks::PARALLEL_ROWS;
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
    let crew = Crew::new();
    std::thread::scope(|scope| {
        let (init, task, crew) = (&init, &task, &crew);
        let (workers, started) = crew.start_all(
            scope,
            (0..count).step_by(block).map(|first| {
                move || {
                    let run = || -> Result<Vec<Option<T>>> {
                        let mut state = init()?;
                        let tasks = first..(first + block).min(count);
                        let mut out = with_capacity(&[tasks.len()], RESULTS)?;
                        for i in tasks {
                            out.push(if crew.stopped() { None } else { task(&mut state, i, &crew.stop)? });
                        }
                        Ok(out)
                    };
                    let out = run();
                    if out.is_err() {
                        crew.stop();
                    }
                    out
                }
            }),
        );
        crew.wait(workers.len(), &mut Checkpoint::new(interrupt));
        let parts = joined_all(workers);
        started?;
        for part in parts {
            all.extend(part?);
        }
        Ok(())
    })?;
    if crew.stopped() {
        return Err(HnmError::Interrupted);
    }
    Ok(all)
}

/// What a calling thread shares with the threads it starts: the flag that stops them (read
/// as their [`Interrupt`]) and the count of those finished, whose increments wake it.
struct Crew {
    stop: AtomicBool,
    finished: AtomicUsize,
    waiting: std::thread::Thread,
    /// Tests: the threads that can start before one cannot, as when the system has no more.
    #[cfg(test)]
    startable: usize,
}

#[cfg(test)]
thread_local! {
    /// [`Crew::startable`] of the crews this test thread makes.
    static STARTABLE: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

impl Crew {
    fn new() -> Self {
        Crew {
            stop: AtomicBool::new(false),
            finished: AtomicUsize::new(0),
            waiting: std::thread::current(),
            #[cfg(test)]
            startable: STARTABLE.with(|startable| startable.get()),
        }
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Each of `jobs` on a new thread of `scope`, which counts itself finished and wakes the
    /// calling thread when it is done. The threads started are returned also when one cannot
    /// start: the caller must still wait for them and join them (a scope that ends with a
    /// panicked thread not joined panics itself).
    ///
    /// # Errors
    /// `Optimizer` (beside the threads started before it) when a thread cannot start; the
    /// jobs after it are not started and those started are stopped.
    fn start_all<'scope, 'env: 'scope, T: Send + 'scope, J: FnOnce() -> T + Send + 'scope>(
        &'env self, scope: &'scope std::thread::Scope<'scope, 'env>, jobs: impl Iterator<Item = J>,
    ) -> (Vec<std::thread::ScopedJoinHandle<'scope, T>>, Result<()>) {
        let mut workers = Vec::new();
        for job in jobs {
            #[cfg(test)]
            if workers.len() == self.startable {
                self.stop();
                return (workers, Err(HnmError::Optimizer("a worker thread could not be started (a test's limit)".into())));
            }
            let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                let _finished = Finished(self);
                job()
            });
            match spawned {
                Ok(worker) => workers.push(worker),
                Err(e) => {
                    self.stop();
                    return (workers, Err(HnmError::Optimizer(format!("a worker thread could not be started ({e})"))));
                }
            }
        }
        (workers, Ok(()))
    }

    /// Until the `started` threads have finished, asks `checkpoint` every
    /// [`Checkpoint::INTERVAL`], and stops them when it reports an interrupt.
    fn wait(&self, started: usize, checkpoint: &mut Checkpoint<'_>) {
        while self.finished.load(Ordering::SeqCst) < started {
            std::thread::park_timeout(Checkpoint::INTERVAL);
            if !self.stopped() && checkpoint.check_timed().is_err() {
                self.stop();
            }
        }
    }
}

/// Counts its thread finished and wakes the calling thread when dropped, as the thread's job
/// returns or unwinds: a job that panics must not leave [`Crew::wait`] waiting for ever (the
/// join then reports the panic); it also stops the other threads.
struct Finished<'c>(&'c Crew);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
        self.0.finished.fetch_add(1, Ordering::SeqCst);
        self.0.waiting.unpark();
    }
}

/// The results of finished threads, in order, every thread joined (a scope with a panicked
/// thread not joined would itself panic); a thread that panicked gives `Optimizer`.
fn joined_all<T>(workers: Vec<std::thread::ScopedJoinHandle<'_, Result<T>>>) -> Vec<Result<T>> {
    workers.into_iter().map(|worker| worker.join().unwrap_or_else(|_| Err(HnmError::Optimizer("a worker thread panicked".into())))).collect()
}

/// `accumulate(range, checkpoint)` over the rows `0..rows` cut into `threads` consecutive
/// ranges (one below [`PARALLEL_ROWS`] rows), the parts merged in row order by `merge`. The
/// calling thread takes the first range itself (a thread started and a thread parked cost
/// the pass at 1e6 rows as much as its second half saves) and alone asks `interrupt`; when it
/// is asked to stop, or its range fails, a flag stops the other threads, and it waits for them
/// asking `interrupt`. The passes over the rows run through it.
///
/// # Errors
/// The error of the first range in row order that has one (so that the first bad row is
/// reported whichever thread meets its range's first); `Interrupted` when `interrupt` asks to
/// stop; `Optimizer` when a thread cannot start or panics.
pub(crate) fn split_rows<P: Send>(
    rows: usize, threads: usize, interrupt: &dyn Interrupt, accumulate: impl Fn(Range<usize>, &mut Checkpoint<'_>) -> Result<P> + Sync,
    merge: impl Fn(P, P) -> P,
) -> Result<P> {
    let threads = if rows < PARALLEL_ROWS { 1 } else { worker_threads(threads, rows) };
    if threads == 1 {
        return accumulate(0..rows, &mut Checkpoint::new(interrupt));
    }
    let chunk = rows.div_ceil(threads);
    let crew = Crew::new();
    std::thread::scope(|scope| {
        let (accumulate, crew) = (&accumulate, &crew);
        let (workers, started) = crew
            .start_all(scope, (chunk..rows).step_by(chunk).map(|first| move || accumulate(first..(first + chunk).min(rows), &mut Checkpoint::new(&crew.stop))));
        let mut checkpoint = Checkpoint::new(interrupt);
        let merged = started.and_then(|()| accumulate(0..chunk, &mut checkpoint));
        if merged.is_err() {
            crew.stop();
        }
        crew.wait(workers.len(), &mut checkpoint);
        let parts = joined_all(workers);
        let mut merged = merged?;
        for part in parts {
            merged = merge(merged, part?);
        }
        if crew.stopped() {
            return Err(HnmError::Interrupted);
        }
        Ok(merged)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::interrupt::Never;

    const ROWS: usize = 3 * PARALLEL_ROWS / 2;

    /// The ranges each part covered, merged by concatenation.
    fn covered(threads: usize, interrupt: &dyn Interrupt) -> Result<Vec<Range<usize>>> {
        split_rows(
            ROWS,
            threads,
            interrupt,
            |range, _| Ok(vec![range]),
            |mut first, second| {
                first.extend(second);
                first
            },
        )
    }

    #[test]
    fn the_parts_cover_the_rows_in_order() {
        for threads in [1, 2, 3] {
            let ranges = covered(threads, &Never).unwrap();
            assert_eq!(ranges.len(), worker_threads(threads, ROWS));
            assert_eq!((ranges[0].start, ranges[ranges.len() - 1].end), (0, ROWS));
            assert!(ranges.windows(2).all(|pair| pair[0].end == pair[1].start), "{ranges:?}");
        }
        // Below PARALLEL_ROWS rows, one range on the calling thread.
        let one = split_rows(PARALLEL_ROWS - 1, 2, &Never, |range, _| Ok(vec![range]), |first, _| first).unwrap();
        assert_eq!(one, vec![0..PARALLEL_ROWS - 1]);
    }

    #[test]
    fn the_first_rows_error_is_reported() {
        let error_at = |bad: &[usize]| {
            split_rows(
                ROWS,
                2,
                &Never,
                |range, _| if bad.contains(&range.start) { Err(HnmError::ColumnNotFinite { column: 0, row: range.start }) } else { Ok(()) },
                |_, _| (),
            )
        };
        let second = ROWS.div_ceil(2);
        assert_eq!(error_at(&[0, second]), Err(HnmError::ColumnNotFinite { column: 0, row: 0 }));
        assert_eq!(error_at(&[second]), Err(HnmError::ColumnNotFinite { column: 0, row: second }));
        assert_eq!(error_at(&[]), Ok(()));
    }

    #[test]
    fn a_thread_that_panics_is_an_error_not_a_wait_for_ever() {
        let result = split_rows(ROWS, 2, &Never, |range, _| if range.start > 0 { panic!("a bug in a range") } else { Ok(()) }, |_, _| ());
        assert!(matches!(result, Err(HnmError::Optimizer(ref message)) if message.contains("panicked")), "{result:?}");
        let result = in_parallel(4, 2, &Never, || Ok(()), |_, i, _| if i == 3 { panic!("a bug in a task") } else { Ok(Some(i)) });
        assert!(matches!(result, Err(HnmError::Optimizer(_))), "{result:?}");
    }

    #[test]
    fn a_thread_that_cannot_start_is_an_error_after_the_started_ones_are_joined() {
        // Two blocks of tasks: the first's thread starts and panics, the second's cannot start.
        // The scope must not panic (it would with a panicked thread left unjoined).
        STARTABLE.with(|startable| startable.set(1));
        let result = in_parallel(4, 2, &Never, || Ok(()), |_, i, _| if i == 1 { panic!("a bug in a task") } else { Ok(Some(i)) });
        assert!(matches!(result, Err(HnmError::Optimizer(ref message)) if message.contains("started")), "{result:?}");
        // No thread starts: the calling thread does not run its own range either.
        STARTABLE.with(|startable| startable.set(0));
        let result = split_rows(ROWS, 2, &Never, |_, _| -> Result<()> { panic!("a range ran") }, |_, _| ());
        assert!(matches!(result, Err(HnmError::Optimizer(ref message)) if message.contains("started")), "{result:?}");
        STARTABLE.with(|startable| startable.set(usize::MAX));
    }

    /// Asks to stop at every question.
    struct Always;

    impl Interrupt for Always {
        fn requested(&self) -> bool {
            true
        }
    }

    #[test]
    fn an_interrupt_of_the_calling_thread_stops_the_others() {
        // The other threads' ranges run until their checkpoint is asked to stop (at most 20 s):
        // only the flag set by the calling thread, whose interrupt asks at once, ends them.
        let start = std::time::Instant::now();
        let result = split_rows(
            ROWS,
            3,
            &Always,
            |range, checkpoint| {
                if range.start == 0 {
                    return checkpoint.check_now();
                }
                while start.elapsed() < std::time::Duration::from_secs(20) {
                    checkpoint.check_now()?;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Ok(())
            },
            |_, _| (),
        );
        assert_eq!(result, Err(HnmError::Interrupted));
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "{:?}", start.elapsed());
    }
}
