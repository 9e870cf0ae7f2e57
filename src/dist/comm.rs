//! The MPI communicator behind [`init`]: MPI_COMM_WORLD through the `mpi` crate.

use crate::array::Data;
use crate::ops::collective::{self, Communicator};
use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::datatype::Equivalence;
use mpi::environment::Universe;
use mpi::topology::{Communicator as _, SimpleCommunicator};
use mpi::Threading;
use std::sync::{Arc, Mutex};

/// The MPI world of this process, from [`init`]. Dropping it unregisters the communicator
/// (collectives become single-process again) and finalises MPI, which can be initialised
/// only once per process: keep it alive until the end of `main`.
pub struct World {
    rank: usize,
    size: usize,
    // Dropped after `Drop::drop` has unregistered the communicator: MPI_Finalize.
    _universe: Universe,
}

impl World {
    /// This process's rank, `0..size`.
    ///
    /// ```no_run
    /// let world = cotangent::dist::init();
    /// assert!(world.rank() < world.size());
    /// ```
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of processes (`mpirun -n`; 1 when started without `mpirun`).
    ///
    /// ```no_run
    /// assert!(cotangent::dist::init().size() >= 1);
    /// ```
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether this is rank 0, the one that logs and writes checkpoints.
    ///
    /// ```no_run
    /// let world = cotangent::dist::init();
    /// if world.is_root() {
    ///     println!("{} ranks", world.size());
    /// }
    /// ```
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }
}

impl Drop for World {
    fn drop(&mut self) {
        collective::set_communicator(None);
    }
}

/// Starts MPI and registers it as the communicator of every collective; returns the world,
/// which must live until the program ends (dropping it finalises MPI).
///
/// Run under `mpirun -n N`, this process is one of N ranks; started directly it is a world
/// of one (MPI's singleton start). With more than one rank, a panic on any rank aborts the
/// whole job through `MPI_Abort` after printing its message (see [the module](super)).
///
/// # Panics
/// If MPI was initialised before in this process (it can be only once, even after a
/// `World` has been dropped).
///
/// ```no_run
/// let world = cotangent::dist::init();
/// println!("rank {} of {}", world.rank(), world.size());
/// ```
#[track_caller]
pub fn init() -> World {
    // Multiple: the panic hook may call MPI_Abort from any thread while another waits in a
    // collective; the collectives themselves are serialised by `Mpi::lock`.
    let Some((universe, _threading)) = mpi::initialize_with_threading(Threading::Multiple) else {
        panic!("dist::init: MPI is already initialised in this process (it can be only once; keep the first World)");
    };
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    collective::set_communicator(Some(Arc::new(Mpi { world, rank, size, lock: Mutex::new(()) })));
    if size > 1 {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            eprintln!(
                "cotangent::dist: rank {rank} of {size} panicked; aborting the job (MPI_Abort) so that the other ranks do not wait for it"
            );
            // A fresh handle to MPI_COMM_WORLD: this may run on any thread, at any time.
            SimpleCommunicator::world().abort(101);
        }));
    }
    World { rank, size, _universe: universe }
}

/// MPI_COMM_WORLD as the core's [`Communicator`].
struct Mpi {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    /// Held through each call, so calls from several threads reach MPI one at a time and
    /// in one order.
    lock: Mutex<()>,
}

// SAFETY: `SimpleCommunicator` holds an MPI handle (MPI_COMM_WORLD), which is not tied to a
// thread. MPI was initialised with MPI_THREAD_MULTIPLE requested; whatever level it grants,
// every collective call here holds `lock`, so MPI sees at most one call at a time
// (MPI_THREAD_SERIALIZED's rule). The handle stays valid until MPI_Finalize, which runs
// when `World` is dropped, after it has unregistered this communicator.
unsafe impl Send for Mpi {}
// SAFETY: as for `Send`: shared use goes through `lock`.
unsafe impl Sync for Mpi {}

/// Messages of at most this many elements (MPI counts are `int`).
const MAX_COUNT: usize = 1 << 30;

impl Mpi {
    fn all_reduce<T: Equivalence + Copy>(&self, v: &mut [T]) {
        for chunk in v.chunks_mut(MAX_COUNT) {
            let send = chunk.to_vec();
            self.world.all_reduce_into(&send[..], chunk, SystemOperation::sum());
        }
    }

    fn bcast<T: Equivalence>(&self, v: &mut [T], root: usize) {
        let root = self.world.process_at_rank(root as i32);
        for chunk in v.chunks_mut(MAX_COUNT) {
            root.broadcast_into(chunk);
        }
    }

    fn reduce<T: Equivalence + Copy>(&self, v: &mut [T], root: usize) {
        let proc = self.world.process_at_rank(root as i32);
        for chunk in v.chunks_mut(MAX_COUNT) {
            let send = chunk.to_vec();
            if self.rank == root {
                proc.reduce_into_root(&send[..], chunk, SystemOperation::sum());
            } else {
                proc.reduce_into(&send[..], SystemOperation::sum());
            }
        }
    }
}

impl Communicator for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum(&self, buf: &mut Data) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        match buf {
            Data::F32(v) => self.all_reduce(v),
            Data::F64(v) => self.all_reduce(v),
            Data::I32(v) => self.all_reduce(v),
            Data::I64(v) => self.all_reduce(v),
            Data::Bool(_) => unreachable!("the type rule keeps bool out of collectives"),
        }
    }

    fn broadcast(&self, buf: &mut Data, root: usize) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        match buf {
            Data::F32(v) => self.bcast(v, root),
            Data::F64(v) => self.bcast(v, root),
            Data::I32(v) => self.bcast(v, root),
            Data::I64(v) => self.bcast(v, root),
            Data::Bool(_) => unreachable!("the type rule keeps bool out of collectives"),
        }
    }

    fn reduce_sum(&self, buf: &mut Data, root: usize) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        match buf {
            Data::F32(v) => self.reduce(v, root),
            Data::F64(v) => self.reduce(v, root),
            Data::I32(v) => self.reduce(v, root),
            Data::I64(v) => self.reduce(v, root),
            Data::Bool(_) => unreachable!("the type rule keeps bool out of collectives"),
        }
    }

    fn barrier(&self) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.world.barrier();
    }
}
