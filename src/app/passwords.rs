//! Passwords: argon2id hashing and checking, and where that work runs.
//!
//! A hash costs about 13 ms of a core and 19 MiB. In `serve` it runs on threads of its
//! own in the idle scheduling class, which do that and nothing else: they hold no lock,
//! no transaction and no part of the runtime, so a request handler that wakes takes
//! their core at once and never waits for one of them. Whoever needs a hash (a login on
//! the blocking pool) hands over the work and waits; elsewhere (the CLI, tests) it runs
//! in the calling thread.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use super::AppError;
use crate::domain::DomainError;

/// argon2id cost: OWASP's recommendation (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        PasswordCost {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordCost {
    fn hasher(self) -> Result<Argon2<'static>, AppError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| AppError::DataDir(format!("invalid argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Hash `password` with a fresh salt from the OS CSPRNG.
pub(super) fn hash_password(cost: PasswordCost, password: &str) -> Result<String, AppError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|_| DomainError::RandomnessUnavailable)?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| AppError::DataDir(format!("salt encoding failed: {e}")))?;
    Ok(cost
        .hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AppError::DataDir(format!("password hashing failed: {e}")))?
        .to_string())
}

/// Whether `password` matches the PHC string `stored` (its own parameters apply; the
/// comparison is `Output`'s, constant-time). Computed in this thread's kept memory when
/// it has some (see [`keep_password_memory`]).
pub(super) fn password_matches(stored: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let hasher = (|| {
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).ok()?;
        Some(Argon2::new(algorithm, version, params))
    })();
    let mut salt_bytes = [0u8; 64];
    let (Some(hasher), Ok(salt)) = (hasher, salt.decode_b64(&mut salt_bytes)) else {
        return false;
    };
    let mut computed = Zeroizing::new(vec![0u8; expected.len()]);
    argon2_into(&hasher, password.as_bytes(), salt, &mut computed).is_ok()
        && argon2::password_hash::Output::new(&computed).is_ok_and(|c| c == expected)
}

/// The most argon2 memory a password thread keeps: 256 MiB in 1 KiB blocks, the largest
/// `argon2_memory_kib` that `serve` accepts.
const KEPT_BLOCKS_MAX: usize = 256 * 1024;

thread_local! {
    /// A password thread's argon2 memory, kept from one hash to the next.
    static MEMORY: std::cell::RefCell<Option<Vec<argon2::Block>>> =
        const { std::cell::RefCell::new(None) };
}

/// Keep this thread's argon2 memory from one password check to the next (grown to the
/// largest cost seen, 19 MiB by default), for the threads that do nothing else: each
/// check then works in memory already mapped, instead of mapping, faulting in and
/// returning 19 MiB, which costs the whole process page faults and TLB flushes.
fn keep_password_memory() {
    MEMORY.with(|memory| {
        if let Ok(mut memory) = memory.try_borrow_mut() {
            memory.get_or_insert_with(Vec::new);
        }
    });
}

/// argon2 of `password` and `salt` into `out`, in the thread's kept memory if it keeps
/// some, else in memory of its own.
fn argon2_into(
    hasher: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let blocks = hasher.params().block_count();
    MEMORY.with(|memory| match memory.try_borrow_mut() {
        Ok(mut kept) => match kept.as_mut() {
            // Kept up to the largest cost `serve` accepts; a stored hash asking for more
            // (an older configuration) gets memory of its own, given back after.
            Some(kept) if blocks <= KEPT_BLOCKS_MAX => {
                if kept.len() < blocks {
                    kept.resize(blocks, argon2::Block::default());
                }
                hasher.hash_password_into_with_memory(password, salt, out, kept.as_mut_slice())
            }
            _ => hasher.hash_password_into(password, salt, out),
        },
        Err(_) => hasher.hash_password_into(password, salt, out),
    })
}

/// Password work waiting for a thread at most; past it the sender waits (the API admits
/// only so many password requests at once, so this is never a long wait).
const QUEUE: usize = 64;

type Job = Box<dyn FnOnce() + Send>;

/// Where argon2 runs: in the calling thread, or on threads of its own (see the module).
#[derive(Debug, Default)]
pub(super) struct PasswordThreads {
    jobs: Option<SyncSender<Job>>,
}

impl PasswordThreads {
    /// `workers` threads in the idle scheduling class, each keeping its argon2 memory;
    /// none (0) runs the work in the calling thread.
    pub(super) fn new(workers: usize) -> PasswordThreads {
        if workers == 0 {
            return PasswordThreads::default();
        }
        let (jobs, queue) = sync_channel::<Job>(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..workers {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("latchkey-password-{n}"))
                .spawn(move || work(&queue));
            if let Err(err) = spawned {
                tracing::error!(error = %err, "a password thread could not start");
            }
        }
        PasswordThreads { jobs: Some(jobs) }
    }

    /// Run `work` where password work runs, and wait for its result.
    pub(super) fn run<T, F>(&self, work: F) -> Result<T, AppError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let Some(jobs) = &self.jobs else {
            return Ok(work());
        };
        let (done, result) = sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        let gone = || AppError::DataDir("the password threads have stopped".into());
        jobs.send(job).map_err(|_| gone())?;
        // A failure inside the work drops `done`: an error here, never a hang.
        result.recv().map_err(|_| gone())
    }
}

/// A password thread: idle priority, kept memory, then jobs until the pool is dropped.
fn work(queue: &Mutex<Receiver<Job>>) {
    if let Err(err) = lower_priority() {
        tracing::warn!(error = ?err, "password thread keeps the normal priority");
    }
    keep_password_memory();
    loop {
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match job {
            Ok(job) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
            Err(_) => return,
        }
    }
}

/// Put the calling thread in Linux's idle scheduling class (`SCHED_IDLE`; elsewhere, the
/// lowest priority): it runs on cores nothing else wants, and any other thread that
/// wakes takes its core at once. At nice 9 (measured on Linux 6.18, whose EEVDF
/// scheduler lets the running thread finish its slice before a woken one runs), each
/// hash held a core for up to a few milliseconds against request handlers, and
/// `/verify`'s p99 under a login flood rose 5 to 14 times. Such a thread must hold
/// nothing another thread waits for: preempted while holding it, it would make that
/// thread wait until the idle class gets a turn.
fn lower_priority() -> Result<(), thread_priority::Error> {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        )
    }
    #[cfg(not(target_os = "linux"))]
    thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let cost = PasswordCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let phc = hash_password(cost, "copper kettle orbit").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(password_matches(&phc, "copper kettle orbit"));
        assert!(!password_matches(&phc, "copper kettle orbiT"));
        assert!(!password_matches("not a hash", "copper kettle orbit"));
    }

    #[test]
    fn kept_memory_checks_hashes_of_any_cost_alike() {
        let cost = |memory_kib, iterations, parallelism| PasswordCost {
            memory_kib,
            iterations,
            parallelism,
        };
        let small = hash_password(cost(64, 1, 1), "copper kettle orbit").unwrap();
        let large = hash_password(cost(256, 2, 2), "copper kettle orbit").unwrap();
        // A hash made elsewhere (argon2's reference vector format, argon2i and a 16-byte
        // output included) checks the same with and without kept memory.
        let other = Argon2::new(Algorithm::Argon2i, Version::V0x10, {
            Params::new(32, 3, 1, Some(16)).unwrap()
        })
        .hash_password(
            b"copper kettle orbit",
            &SaltString::encode_b64(b"sixteen byte slt").unwrap(),
        )
        .unwrap()
        .to_string();
        let check = move || {
            for phc in [&small, &large, &other, &small] {
                assert!(password_matches(phc, "copper kettle orbit"), "{phc}");
                assert!(!password_matches(phc, "copper kettle orbiT"), "{phc}");
            }
        };
        check();
        std::thread::spawn(move || {
            keep_password_memory();
            check();
            let kept = || MEMORY.with(|m| m.borrow().as_ref().map(Vec::len));
            // Grown once to the largest cost (256 KiB is 256 blocks), then reused.
            assert_eq!(kept(), Some(256));
            // A cost past what serve accepts is checked in memory of its own.
            let huge = hash_password(cost(KEPT_BLOCKS_MAX as u32 + 1024, 1, 1), "p").unwrap();
            assert!(password_matches(&huge, "p"));
            assert_eq!(kept(), Some(256));
        })
        .join()
        .unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn password_work_runs_in_the_idle_class_and_only_there() {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, thread_schedule_policy,
        };
        let threads = PasswordThreads::new(1);
        let policy = threads.run(thread_schedule_policy).unwrap();
        assert_eq!(
            policy.unwrap(),
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)
        );
        // The caller's own thread is left as it was, and with no threads the work runs
        // in the caller's.
        let normal = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
        assert_eq!(thread_schedule_policy().unwrap(), normal);
        let inline = PasswordThreads::new(0).run(thread_schedule_policy).unwrap();
        assert_eq!(inline.unwrap(), normal);
    }

    #[test]
    fn a_failure_inside_password_work_is_an_error_and_the_thread_goes_on() {
        let threads = PasswordThreads::new(1);
        let failed = threads.run(|| -> u8 { panic!("inside the work") });
        assert!(matches!(failed, Err(AppError::DataDir(_))), "{failed:?}");
        assert_eq!(threads.run(|| 7).unwrap(), 7);
    }
}
