//! A team of persistent workers for many short dependent parallel steps.
//!
//! An LSTM's recurrence is `seq` products in a row, each needing the whole
//! previous hidden state. A fork-join per step costs a wake-up of the pool
//! (tens of microseconds on a VM), which at batch 1 is longer than the step
//! itself, and it hands each worker a different share of the weights each
//! time, so no core keeps its share in its own L2. A team instead starts one
//! task per pool thread once, keeps the same share on the same thread for
//! every step, and separates steps with a barrier that spins (well under a
//! microsecond when every worker is running) and then parks: a worker that
//! has lost its core to another process (an oversubscribed or busy
//! machine) is waited for asleep, so the others give the core back to it
//! instead of burning their time slices.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Spin-loop iterations between two looks at the clock while spinning.
const SPINS_PER_CLOCK_CHECK: u32 = 256;

/// How long a parked worker sleeps before it looks for a panicked worker
/// (a wake-up normally comes much sooner).
const PARKED_RECHECK: Duration = Duration::from_millis(5);

/// Bounds of the calibrated spin time ([`spin_limit`]).
const SPIN_LIMIT_RANGE: (Duration, Duration) = (Duration::from_micros(20), Duration::from_micros(500));

/// How long a waiting worker spins before it parks: four times what a
/// park and wake-up cost on this machine (measured once, by two threads
/// waking each other through a condition variable), within
/// [`SPIN_LIMIT_RANGE`]. Waiting longer than a wake-up costs means the
/// worker awaited is most likely not running; parking then frees the core.
pub fn spin_limit() -> Duration {
    static LIMIT: OnceLock<Duration> = OnceLock::new();
    *LIMIT.get_or_init(|| (wake_up_cost() * 4).clamp(SPIN_LIMIT_RANGE.0, SPIN_LIMIT_RANGE.1))
}

/// The median time of one wake-up through a condition variable, from 64
/// round trips between two threads.
fn wake_up_cost() -> Duration {
    const ROUNDS: usize = 64;
    let state = std::sync::Arc::new((Mutex::new(0usize), Condvar::new()));
    let other = state.clone();
    let echo = std::thread::spawn(move || {
        let (lock, cv) = &*other;
        for round in 0..ROUNDS {
            let mut turn = lock.lock().unwrap_or_else(|e| e.into_inner());
            while *turn != 2 * round + 1 {
                turn = cv.wait(turn).unwrap_or_else(|e| e.into_inner());
            }
            *turn += 1;
            cv.notify_one();
        }
    });
    let (lock, cv) = &*state;
    let mut times = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let started = Instant::now();
        let mut turn = lock.lock().unwrap_or_else(|e| e.into_inner());
        *turn += 1;
        cv.notify_one();
        while *turn != 2 * round + 2 {
            turn = cv.wait(turn).unwrap_or_else(|e| e.into_inner());
        }
        // Two wake-ups per round trip.
        times.push(started.elapsed() / 2);
    }
    let _ = echo.join();
    times.sort();
    times[ROUNDS / 2]
}

/// What the workers of one team share to wait for each other: a barrier
/// ([`Team::wait`]) and completion counters ([`Team::complete`],
/// [`Team::wait_done`]). Both spin for [`spin_limit`], then park.
pub struct Team {
    parties: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: AtomicBool,
    /// Workers parked (or about to park) on `wake`.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    spin_limit: Duration,
}

impl Team {
    fn new(parties: usize) -> Team {
        Team {
            parties,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            spin_limit: spin_limit(),
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
            // SeqCst with the sleepers' count: either this sees a sleeper
            // and wakes it, or the sleeper sees the new generation first.
            self.generation.fetch_add(1, Ordering::SeqCst);
            self.wake_sleepers();
            return;
        }
        self.block_until(|| self.generation.load(Ordering::SeqCst) != generation);
    }

    /// Adds `units` of finished work to `counter`; everything written
    /// before is visible to whoever [`Team::wait_done`]s on it.
    pub fn complete(&self, counter: &AtomicUsize, units: usize) {
        counter.fetch_add(units, Ordering::SeqCst);
        self.wake_sleepers();
    }

    /// Blocks until `counter` reaches `total`: until the work it counts is
    /// done, by whichever workers did it. A worker that has lost its core
    /// holds nobody up here unless it holds unfinished work.
    pub fn wait_done(&self, counter: &AtomicUsize, total: usize) {
        self.block_until(|| counter.load(Ordering::SeqCst) >= total);
    }

    /// Wakes the parked workers, if any (cheap when none is).
    fn wake_sleepers(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.wake.notify_all();
        }
    }

    /// Spins until `ready`, for at most the spin limit, then parks until
    /// it (every change `ready` waits for is followed by a wake-up).
    fn block_until(&self, ready: impl Fn() -> bool) {
        let started = Instant::now();
        loop {
            for _ in 0..SPINS_PER_CLOCK_CHECK {
                if ready() {
                    return;
                }
                std::hint::spin_loop();
            }
            self.check_poison();
            if started.elapsed() >= self.spin_limit {
                break;
            }
        }
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let mut held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while !ready() {
            if self.poisoned.load(Ordering::Relaxed) {
                drop(held);
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                panic!("another worker of the team panicked");
            }
            held = self.wake.wait_timeout(held, PARKED_RECHECK).unwrap_or_else(|e| e.into_inner()).0;
        }
        drop(held);
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    fn check_poison(&self) {
        if self.poisoned.load(Ordering::Relaxed) {
            panic!("another worker of the team panicked");
        }
    }
}

/// Runs `task(worker, team)` for `worker` in `0..workers` at the same
/// time, each on its own thread of the current rayon pool (at most the
/// pool's size; fewer when asked). Returns when all have finished. A panic
/// in one worker releases the others and is re-raised here.
pub fn run_team(workers: usize, task: &(dyn Fn(usize, &Team) + Sync)) {
    let workers = workers.clamp(1, rayon::current_num_threads());
    let barrier = Team::new(workers);
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

    /// Work counted done by whoever did it releases the waiting workers,
    /// even while another worker of the team is not running at all (here:
    /// asleep for 200 ms before it even looks at the work).
    #[test]
    fn completion_waits_for_work_not_for_workers() {
        pool(3).install(|| {
            let (next, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
            let released = std::sync::Mutex::new(Vec::new());
            let started = Instant::now();
            run_team(3, &|w, team| {
                if w == 2 {
                    std::thread::sleep(Duration::from_millis(200));
                }
                while next.fetch_add(1, Ordering::Relaxed) < 100 {
                    team.complete(&done, 1);
                }
                team.wait_done(&done, 100);
                released.lock().unwrap().push((w, started.elapsed()));
            });
            let released = released.into_inner().unwrap();
            assert_eq!(done.load(Ordering::Relaxed), 100);
            for (w, at) in released.iter().filter(|(w, _)| *w != 2) {
                assert!(*at < Duration::from_millis(150), "worker {w} waited for the sleeping one: {at:?}");
            }
        });
    }

    /// Workers that wait longer than the spin limit park and are woken by
    /// the work's completion and by the barrier's last arrival.
    #[test]
    fn parked_workers_wake_up() {
        pool(2).install(|| {
            let done = AtomicUsize::new(0);
            run_team(2, &|w, team| {
                for round in 1..=3 {
                    if w == 0 {
                        std::thread::sleep(spin_limit() * 4);
                        team.complete(&done, 1);
                    }
                    team.wait_done(&done, round);
                    if w == 1 {
                        std::thread::sleep(spin_limit() * 4);
                    }
                    team.wait();
                }
            });
            assert_eq!(done.load(Ordering::Relaxed), 3);
        });
        let limit = spin_limit();
        assert!(limit >= SPIN_LIMIT_RANGE.0 && limit <= SPIN_LIMIT_RANGE.1, "{limit:?}");
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
