//! Cooperative cancellation: long loops of the core ask, now and then, whether the user
//! wants them to stop (Ctrl-C in R), and return [`HnmError::Interrupted`] when so.
//!
//! The core knows nothing of R: the caller passes an [`Interrupt`] (the R glue asks R in a
//! way that cannot jump over Rust frames). A [`Checkpoint`] keeps the cost negligible: it
//! reads the clock only every [`Checkpoint::STRIDE`] calls and asks the [`Interrupt`] at most
//! every [`Checkpoint::INTERVAL`].

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{HnmError, Result};

/// Whether the user has asked the running computation to stop.
///
/// Only the thread that created the [`Checkpoint`] calls it (in R, the main thread).
pub trait Interrupt {
    /// True when the computation should stop now.
    fn requested(&self) -> bool;
}

/// The [`Interrupt`] that never asks to stop (tests, benchmarks, callers outside R).
#[derive(Debug, Clone, Copy, Default)]
pub struct Never;

impl Interrupt for Never {
    fn requested(&self) -> bool {
        false
    }
}

/// A stop flag that one thread sets and others read: how the threads of a parallel
/// computation learn that the main thread's [`Interrupt`] asked to stop.
impl Interrupt for AtomicBool {
    fn requested(&self) -> bool {
        self.load(Ordering::Relaxed)
    }
}

/// Rate-limited checks of an [`Interrupt`] inside a loop.
///
/// # Example
/// ```
/// use hnm_core::{Checkpoint, HnmError, Interrupt};
/// struct Always;
/// impl Interrupt for Always {
///     fn requested(&self) -> bool { true }
/// }
/// let mut checkpoint = Checkpoint::new(&Always);
/// // The first check after INTERVAL (or a forced one) reports the request.
/// assert_eq!(checkpoint.check_now(), Err(HnmError::Interrupted));
/// ```
pub struct Checkpoint<'a> {
    interrupt: &'a dyn Interrupt,
    calls: u32,
    last: Instant,
    /// [`Checkpoint::INTERVAL`], or none in tests that count the questions.
    interval: Duration,
}

impl<'a> Checkpoint<'a> {
    /// Calls to [`Checkpoint::check`] between two readings of the clock.
    pub const STRIDE: u32 = 1 << 12;
    /// The longest time between two questions to the [`Interrupt`] while a loop calls
    /// [`Checkpoint::check`] at least every [`Checkpoint::STRIDE`] steps of a few µs.
    pub const INTERVAL: Duration = Duration::from_millis(50);

    /// A checkpoint asking `interrupt`.
    pub fn new(interrupt: &'a dyn Interrupt) -> Self {
        Checkpoint { interrupt, calls: 0, last: Instant::now(), interval: Self::INTERVAL }
    }

    /// A checkpoint asking `interrupt` at this one's pace (the interval between questions).
    pub(crate) fn paced_like<'b>(&self, interrupt: &'b dyn Interrupt) -> Checkpoint<'b> {
        Checkpoint { interrupt, calls: 0, last: Instant::now(), interval: self.interval }
    }

    /// Tests: a checkpoint whose every timed check asks `interrupt` (no interval), so that
    /// the questions of a computation can be counted.
    #[cfg(test)]
    pub(crate) fn asking_every_time(interrupt: &'a dyn Interrupt) -> Self {
        Checkpoint { interval: Duration::ZERO, ..Checkpoint::new(interrupt) }
    }

    /// Cheap enough for every row of a data pass: every [`Checkpoint::STRIDE`] calls it reads
    /// the clock, and when [`Checkpoint::INTERVAL`] has passed it asks the [`Interrupt`].
    ///
    /// # Errors
    /// [`HnmError::Interrupted`] when the user asked to stop.
    #[inline]
    pub fn check(&mut self) -> Result<()> {
        self.calls = self.calls.wrapping_add(1);
        if self.calls % Self::STRIDE != 0 {
            return Ok(());
        }
        self.check_timed()
    }

    /// For loops whose every step is long (an optimiser iteration, a profile point): asks
    /// the [`Interrupt`] when [`Checkpoint::INTERVAL`] has passed since it last did.
    ///
    /// # Errors
    /// [`HnmError::Interrupted`] when the user asked to stop.
    pub fn check_timed(&mut self) -> Result<()> {
        if self.last.elapsed() < self.interval {
            return Ok(());
        }
        self.check_now()
    }

    /// For loops whose steps cost `work` rows' worth of a data pass each (one pass over the
    /// groups costs one per group): counts the work as [`Checkpoint::check`] counts calls,
    /// so the clock is read about every [`Checkpoint::STRIDE`] rows' worth, and at every step
    /// of at least that much.
    ///
    /// # Errors
    /// [`HnmError::Interrupted`] when the user asked to stop.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{Checkpoint, Never};
    /// let mut checkpoint = Checkpoint::new(&Never);
    /// for _ in 0..1000 {
    ///     checkpoint.check_work(1_000_000).unwrap(); // each step reads the clock
    /// }
    /// ```
    pub fn check_work(&mut self, work: usize) -> Result<()> {
        let before = self.calls;
        self.calls = self.calls.wrapping_add(work.min(Self::STRIDE as usize) as u32);
        if work >= Self::STRIDE as usize || before / Self::STRIDE != self.calls / Self::STRIDE {
            self.check_timed()
        } else {
            Ok(())
        }
    }

    /// The [`Interrupt`] it asks (for a [`Latched`] over it).
    pub(crate) fn interrupt(&self) -> &'a dyn Interrupt {
        self.interrupt
    }

    /// Asks the [`Interrupt`] now.
    ///
    /// # Errors
    /// [`HnmError::Interrupted`] when the user asked to stop.
    pub fn check_now(&mut self) -> Result<()> {
        self.last = Instant::now();
        if self.interrupt.requested() {
            Err(HnmError::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// An [`Interrupt`] that remembers a request: once the interrupt it wraps has asked to stop,
/// it asks to stop at every later question without asking again. R reports a Ctrl-C once
/// (asking consumes it), so a search whose evaluation saw it, inside a line search that takes a
/// failed evaluation for a failed step and goes on, still learns of it from
/// [`Latched::latched`] or its own checkpoint's next question.
pub(crate) struct Latched<'a> {
    interrupt: &'a dyn Interrupt,
    requested: Cell<bool>,
}

impl<'a> Latched<'a> {
    pub(crate) fn new(interrupt: &'a dyn Interrupt) -> Self {
        Latched { interrupt, requested: Cell::new(false) }
    }

    /// Whether a question has been answered "stop" (without asking again).
    pub(crate) fn latched(&self) -> bool {
        self.requested.get()
    }
}

impl Interrupt for Latched<'_> {
    fn requested(&self) -> bool {
        if !self.requested.get() && self.interrupt.requested() {
            self.requested.set(true);
        }
        self.requested.get()
    }
}

/// A [`Checkpoint`] that the `Fn` closures of a computation (the functions handed to a root
/// finder) can all ask, remembering a request: once one check has reported it, every later
/// check and [`Polled::status`] report it too, so the computation can end with
/// [`HnmError::Interrupted`] however the closure's caller reacts to a stop. The evaluations
/// inside a search that holds the checkpoint ([`Polled::run`]) ask a second one over the same
/// interrupt ([`Polled::evaluate`]): an evaluation of several factors takes minutes at
/// MovieLens 32M's shape, and a line search takes an interrupted one for a failed step.
pub(crate) struct Polled<'c, 'a> {
    checkpoint: RefCell<&'c mut Checkpoint<'a>>,
    evaluations: RefCell<Checkpoint<'a>>,
    stopped: Cell<bool>,
}

impl<'c, 'a> Polled<'c, 'a> {
    pub(crate) fn new(checkpoint: &'c mut Checkpoint<'a>) -> Self {
        let evaluations = RefCell::new(checkpoint.paced_like(checkpoint.interrupt()));
        Polled { checkpoint: RefCell::new(checkpoint), evaluations, stopped: Cell::new(false) }
    }

    /// True when the computation must stop, after `work` more rows' worth of work
    /// ([`Checkpoint::check_work`]).
    pub(crate) fn stop_after(&self, work: usize) -> bool {
        if !self.stopped.get() && self.checkpoint.borrow_mut().check_work(work).is_err() {
            self.stopped.set(true);
        }
        self.stopped.get()
    }

    /// `work(checkpoint)` (an inner computation that polls the checkpoint itself), unless a
    /// request was reported before; a request it reports is remembered, and one that an
    /// evaluation inside it reported ([`Polled::evaluate`]) makes it `Interrupted` whatever it
    /// returned (a search that took the interrupted evaluation for a failed step).
    pub(crate) fn run<R>(&self, work: impl FnOnce(&mut Checkpoint<'a>) -> Result<R>) -> Result<R> {
        self.status()?;
        let result = work(&mut self.checkpoint.borrow_mut());
        self.remembered(result)
    }

    /// `evaluation(checkpoint)` with the evaluations' checkpoint (callable inside
    /// [`Polled::run`]), unless a request was reported before: once one is, every later
    /// evaluation fails at once, so the search around it ends.
    pub(crate) fn evaluate<R>(&self, evaluation: impl FnOnce(&mut Checkpoint<'a>) -> Result<R>) -> Result<R> {
        self.status()?;
        let result = evaluation(&mut self.evaluations.borrow_mut());
        self.remembered(result)
    }

    /// `result`, with an interrupt it reports remembered; `Interrupted` once one was.
    fn remembered<R>(&self, result: Result<R>) -> Result<R> {
        if matches!(result, Err(HnmError::Interrupted)) {
            self.stopped.set(true);
        }
        self.status()?;
        result
    }

    /// `Err(Interrupted)` when a check has reported a request.
    pub(crate) fn status(&self) -> Result<()> {
        if self.stopped.get() {
            Err(HnmError::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// An interrupt that asks to stop once `after` has passed since `start`: for tests that a
/// long computation stops soon after, its threads joined.
#[cfg(test)]
pub(crate) struct After {
    pub(crate) start: std::time::Instant,
    pub(crate) after: std::time::Duration,
}

#[cfg(test)]
impl Interrupt for After {
    fn requested(&self) -> bool {
        self.start.elapsed() >= self.after
    }
}

/// Tests: an interrupt that counts the questions asked and asks to stop from the
/// `stop_at`-th on (never with `usize::MAX`).
#[cfg(test)]
pub(crate) struct StopAt {
    pub(crate) questions: Cell<usize>,
    pub(crate) stop_at: usize,
}

#[cfg(test)]
impl StopAt {
    pub(crate) fn new(stop_at: usize) -> Self {
        StopAt { questions: Cell::new(0), stop_at }
    }
}

#[cfg(test)]
impl Interrupt for StopAt {
    fn requested(&self) -> bool {
        self.questions.set(self.questions.get() + 1);
        self.questions.get() >= self.stop_at
    }
}

/// Tests: the questions `work` asks a checkpoint that asks at every timed check (none stops
/// it).
#[cfg(test)]
pub(crate) fn questions<T>(work: impl FnOnce(&mut Checkpoint<'_>) -> Result<T>) -> usize {
    let counter = StopAt::new(usize::MAX);
    work(&mut Checkpoint::asking_every_time(&counter)).expect("the work, never stopped");
    counter.questions.get()
}

/// Tests: `work` stopped at each question of `stops` returns `Interrupted` and asks no
/// question after the one that stopped it; `what` names it in a failure.
#[cfg(test)]
pub(crate) fn assert_stops_at<T: std::fmt::Debug>(what: &str, stops: impl IntoIterator<Item = usize>, mut work: impl FnMut(&mut Checkpoint<'_>) -> Result<T>) {
    for k in stops {
        let stop = StopAt::new(k);
        let stopped = work(&mut Checkpoint::asking_every_time(&stop));
        assert!(matches!(stopped, Err(HnmError::Interrupted)), "{what}: stopped at question {k}: {stopped:?}");
        assert_eq!(stop.questions.get(), k, "{what}: questions after the stop at {k}");
    }
}

/// Tests: [`assert_stops_at`] at the first, middle and last of the `total` questions.
#[cfg(test)]
pub(crate) fn assert_stops<T: std::fmt::Debug>(total: usize, work: impl FnMut(&mut Checkpoint<'_>) -> Result<T>) {
    assert_stops_at(&format!("{total} questions"), [1, total.div_ceil(2), total], work);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Always;
    impl Interrupt for Always {
        fn requested(&self) -> bool {
            true
        }
    }

    #[test]
    fn polled_checks_remember_a_request() {
        let mut checkpoint = Checkpoint::new(&Always);
        let polled = Polled::new(&mut checkpoint);
        assert_eq!(polled.status(), Ok(()));
        // A step of a whole stride's work reads the clock; the interval has not passed yet.
        assert!(!polled.stop_after(Checkpoint::STRIDE as usize));
        std::thread::sleep(Checkpoint::INTERVAL);
        assert!(polled.stop_after(1 << 20));
        assert!(polled.stop_after(0));
        assert_eq!(polled.status(), Err(HnmError::Interrupted));
    }

    #[test]
    fn small_steps_read_the_clock_once_a_stride() {
        let flag = AtomicBool::new(false);
        let mut checkpoint = Checkpoint::new(&flag);
        std::thread::sleep(Checkpoint::INTERVAL);
        flag.store(true, Ordering::Relaxed);
        // 4095 steps of 1: no clock reading yet; the 4096th crosses the stride.
        for _ in 1..Checkpoint::STRIDE {
            assert_eq!(checkpoint.check_work(1), Ok(()));
        }
        assert_eq!(checkpoint.check_work(1), Err(HnmError::Interrupted));
    }
}
