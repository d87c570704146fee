//! A team of persistent workers for many short dependent parallel steps.
//!
//! An LSTM's recurrence is `seq` products in a row, each needing the whole
//! previous hidden state. A fork-join per step costs a wake-up of the pool
//! (tens of microseconds on a VM), which at batch 1 is longer than the step
//! itself, and it hands each worker a different share of the weights each
//! time, so no core keeps its share in its own L2. A team instead starts one
//! task per pool thread once, keeps the same share on the same thread for
//! every step, and separates steps with a spinning barrier (well under a
//! microsecond when every worker is running).

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Spins this many times before the barrier starts yielding the CPU, so a
/// descheduled worker (an oversubscribed or noisy machine) does not leave
/// the others burning its core.
const SPINS_BEFORE_YIELD: u32 = 1 << 14;

/// A reusable barrier for the workers of one team.
pub struct SpinBarrier {
    parties: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: AtomicBool,
}

impl SpinBarrier {
    fn new(parties: usize) -> SpinBarrier {
        SpinBarrier {
            parties,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// Blocks until every worker of the team has called `wait` this round.
    /// Everything a worker wrote before its `wait` is visible to every worker
    /// after it. Panics if another worker panicked (instead of waiting for it
    /// forever).
    pub fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.parties {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            if self.poisoned.load(Ordering::Relaxed) {
                panic!("another worker of the team panicked");
            }
            if spins < SPINS_BEFORE_YIELD {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Runs `task(worker, barrier)` for `worker` in `0..workers` at the same
/// time, each on its own thread of the current rayon pool (at most the
/// pool's size; fewer when asked). Returns when all have finished. A panic
/// in one worker releases the others and is re-raised here.
pub fn run_team(workers: usize, task: &(dyn Fn(usize, &SpinBarrier) + Sync)) {
    let workers = workers.clamp(1, rayon::current_num_threads());
    let barrier = SpinBarrier::new(workers);
    if workers == 1 {
        task(0, &barrier);
        return;
    }
    // `broadcast` gives every pool thread exactly one call, so the workers
    // run concurrently (two spawned tasks could land on one thread and wait
    // for each other at the barrier forever).
    rayon::broadcast(|ctx| {
        let worker = ctx.index();
        if worker >= workers {
            return;
        }
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| task(worker, &barrier))) {
            barrier.poisoned.store(true, Ordering::Relaxed);
            resume_unwind(panic);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
    }

    #[test]
    fn every_step_sees_all_writes_of_the_previous_step() {
        for threads in [1, 2, 3] {
            pool(threads).install(|| {
                let cells: Vec<AtomicU64> = (0..threads).map(|_| AtomicU64::new(0)).collect();
                let stale = AtomicUsize::new(0);
                run_team(threads, &|w, barrier| {
                    for step in 1..=500u64 {
                        cells[w].store(step, Ordering::Relaxed);
                        barrier.wait();
                        if cells.iter().any(|c| c.load(Ordering::Relaxed) != step) {
                            stale.fetch_add(1, Ordering::Relaxed);
                        }
                        barrier.wait();
                    }
                });
                assert_eq!(stale.load(Ordering::Relaxed), 0, "{threads} threads");
                assert!(cells.iter().all(|c| c.load(Ordering::Relaxed) == 500));
            });
        }
    }

    #[test]
    fn fewer_workers_than_threads_and_more_than_threads() {
        pool(3).install(|| {
            let seen = AtomicUsize::new(0);
            run_team(2, &|_, barrier| {
                seen.fetch_add(1, Ordering::Relaxed);
                barrier.wait();
            });
            assert_eq!(seen.load(Ordering::Relaxed), 2);
            seen.store(0, Ordering::Relaxed);
            run_team(8, &|_, barrier| {
                seen.fetch_add(1, Ordering::Relaxed);
                barrier.wait();
            });
            assert_eq!(seen.load(Ordering::Relaxed), 3);
        });
    }

    #[test]
    fn a_panicking_worker_releases_the_others() {
        let result = std::panic::catch_unwind(|| {
            pool(2).install(|| {
                run_team(2, &|w, barrier| {
                    if w == 1 {
                        panic!("worker 1 fails");
                    }
                    barrier.wait();
                })
            })
        });
        assert!(result.is_err());
    }
}
