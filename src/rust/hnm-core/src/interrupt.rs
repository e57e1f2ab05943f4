//! Cooperative cancellation: long loops of the core ask, now and then, whether the user
//! wants them to stop (Ctrl-C in R), and return [`HnmError::Interrupted`] when so.
//!
//! The core knows nothing of R: the caller passes an [`Interrupt`] (the R glue asks R in a
//! way that cannot jump over Rust frames). A [`Checkpoint`] keeps the cost negligible: it
//! reads the clock only every [`Checkpoint::STRIDE`] calls and asks the [`Interrupt`] at most
//! every [`Checkpoint::INTERVAL`].

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
}

impl<'a> Checkpoint<'a> {
    /// Calls to [`Checkpoint::check`] between two readings of the clock.
    pub const STRIDE: u32 = 1 << 12;
    /// The longest time between two questions to the [`Interrupt`] while a loop calls
    /// [`Checkpoint::check`] at least every [`Checkpoint::STRIDE`] steps of a few µs.
    pub const INTERVAL: Duration = Duration::from_millis(50);

    /// A checkpoint asking `interrupt`.
    pub fn new(interrupt: &'a dyn Interrupt) -> Self {
        Checkpoint { interrupt, calls: 0, last: Instant::now() }
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
        if self.last.elapsed() < Self::INTERVAL {
            return Ok(());
        }
        self.check_now()
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
