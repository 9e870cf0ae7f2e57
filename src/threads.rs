//! How many threads cotangent's kernels use.
//!
//! Large kernels (fused loops, reductions, products through `gemm`, random bits) split
//! their work over [rayon]'s global pool, and a plan runs independent products side by
//! side, one per thread. The count is chosen once per process, at the first kernel
//! large enough to use threads (or the first plan built), from, in order:
//!
//! 1. [`set_threads`], if the program called it before then;
//! 2. the environment variable `COTANGENT_THREADS` (a positive integer);
//! 3. rayon's default: `RAYON_NUM_THREADS`, else one thread per core.
//!
//! With one thread cotangent never touches rayon: every kernel runs on the calling thread
//! and no pool is built. With more, cotangent builds rayon's *global* pool with that many
//! threads. If the program built the global pool itself before cotangent's first use,
//! cotangent runs on that pool as it is (its size wins over the setting; [`set_threads`]
//! then reports the conflict), and a call inside [`rayon::ThreadPool::install`] splits its
//! work over that pool. Only a setting of one thread is honoured whatever pool exists.
//!
//! Work is split into fixed ranges and partial results are combined in a fixed order, so
//! results are bitwise identical for every thread count.

use std::sync::OnceLock;

use crate::Error;

/// The choice made at first use.
#[derive(Debug)]
struct Choice {
    /// Threads asked for (0: rayon's default).
    requested: usize,
    /// Whether cotangent runs everything on the calling thread.
    single: bool,
}

static CHOICE: OnceLock<Choice> = OnceLock::new();

/// `COTANGENT_THREADS`, or 0 (rayon's default) when unset or not a positive integer
/// (then with a warning).
fn from_env() -> usize {
    let Ok(text) = std::env::var("COTANGENT_THREADS") else { return 0 };
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => n,
        _ => {
            eprintln!("cotangent: COTANGENT_THREADS={text:?} is not a positive integer; using all cores");
            0
        }
    }
}

/// Fixes the choice: builds rayon's global pool with `requested` threads unless one is enough.
fn choose(requested: usize) -> Choice {
    if requested == 1 {
        return Choice { requested, single: true };
    }
    // Fails only if the global pool exists already (the program built it, or used rayon
    // before cotangent did): then that pool is used as it is.
    let _ = rayon::ThreadPoolBuilder::new().num_threads(requested).build_global();
    Choice { requested, single: false }
}

fn choice() -> &'static Choice {
    CHOICE.get_or_init(|| choose(from_env()))
}

/// The number of threads cotangent's kernels split work over when called from this
/// thread: 1 in single-threaded mode, else the size of the rayon pool the call runs in
/// (the global pool, or the one a [`rayon::ThreadPool::install`] around it entered).
///
/// The first call fixes the setting (see the [module docs](mod@crate::threads)).
///
/// ```
/// assert!(cotangent::threads() >= 1);
/// ```
pub fn threads() -> usize {
    if choice().single {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// Whether kernels may split work between threads now (fixing the setting on first call).
#[inline]
pub(crate) fn parallel() -> bool {
    threads() > 1
}

/// Sets the number of threads cotangent uses, overriding `COTANGENT_THREADS`; 1 runs every
/// kernel on the calling thread.
///
/// Call it before anything else in cotangent runs: the setting is fixed by the first kernel
/// large enough to use threads. Asking again for the same count is fine.
///
/// # Errors
/// [`Error::Threads`] if `n` is 0, if the setting was already fixed to another count, or
/// if the program built rayon's global pool itself with another size (cotangent then uses
/// that pool; asking for one thread always succeeds before first use).
///
/// ```
/// // Before anything else in cotangent runs:
/// cotangent::set_threads(1).unwrap();
/// assert_eq!(cotangent::threads(), 1);
/// assert!(cotangent::set_threads(1).is_ok()); // the same again: fine
/// assert!(cotangent::set_threads(4).is_err()); // too late to change it
/// ```
pub fn set_threads(n: usize) -> Result<(), Error> {
    if n == 0 {
        return Err(Error::Threads { message: "ask for at least one thread".into() });
    }
    let mut fresh = false;
    let c = CHOICE.get_or_init(|| {
        fresh = true;
        choose(n)
    });
    if !fresh {
        if c.requested == n || (n == 1 && c.single) {
            return Ok(());
        }
        let was = if c.requested == 0 { "rayon's default".to_string() } else { c.requested.to_string() };
        return Err(Error::Threads {
            message: format!("already fixed at first use (to {was}); call set_threads before anything else runs"),
        });
    }
    if !c.single && rayon::current_num_threads() != n {
        return Err(Error::Threads {
            message: format!(
                "rayon's global pool was already built with {} threads; cotangent uses it",
                rayon::current_num_threads()
            ),
        });
    }
    Ok(())
}
