//! Starting a script: a child made with `clone(CLONE_VM | CLONE_VFORK)` on a small stack of its
//! own, which sets itself up and `exec`s while the waiter waits. Nothing of the waiter is
//! copied (a fork + exec costs page-table copies and copy-on-write faults in both processes).
//! The script gets its own process group, an empty signal mask and default dispositions for
//! [`RESET_TO_DEFAULT`] (the waiter blocks the signals it waits for, and ignores SIGPIPE as the
//! Rust runtime does), its folder, exactly its environment, `/dev/null` for input and the
//! given descriptors for output.
//!
//! This is what glibc's `posix_spawn` does, less its signal loop: a child that shares the
//! parent's memory must not run the parent's signal handlers, so glibc blocks every signal in
//! the parent around the clone and, in the child, asks for the disposition of each of the 64
//! signals (about 120 `sigaction` calls, and five `getrlimit`s and a stack `mmap` besides:
//! 30–60 µs a start on this project's 2-core test VM, against about 1 ms for a whole `touch`
//! step). A waiter installs no handler of its own (it reads its signals from a signalfd), and
//! the only ones in the process, the Rust runtime's for SIGSEGV and SIGBUS, answer faults,
//! which the child's few system calls do not cause.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

/// Signals whose disposition the script gets reset to the default.
const RESET_TO_DEFAULT: [i32; 8] = [
    libc::SIGPIPE,
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGCHLD,
];

/// The child's stack: it makes a handful of system calls through libc and `exec`s.
const CHILD_STACK: usize = 64 * 1024;

/// What to start.
pub(crate) struct Spawn<'a> {
    /// The program's path (found on PATH by the caller).
    pub program: &'a Path,
    /// `argv`, `argv[0]` included.
    pub argv: Vec<&'a str>,
    pub env: &'a BTreeMap<String, String>,
    pub cwd: &'a Path,
    pub stdout: RawFd,
    pub stderr: RawFd,
}

/// Everything the child needs, ready before the clone: it allocates nothing.
struct Child {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    /// Descriptors for the child's 0, 1 and 2 (none of them below 3).
    stdio: [RawFd; 3],
    /// The `errno` of the call that failed in the child; 0 when it got to `exec`.
    error: libc::c_int,
}

impl Spawn<'_> {
    /// Starts the program; its pid. Errors from `exec` (not found, not executable) and from
    /// the child's set-up (its folder missing) come back as the error.
    pub fn start(&self) -> io::Result<u32> {
        let program = cstring(self.program.as_os_str())?;
        let argv = self
            .argv
            .iter()
            .map(|a| cstring(OsStr::new(a)))
            .collect::<io::Result<Vec<_>>>()?;
        let envp = self
            .env
            .iter()
            .map(|(k, v)| cstring(OsStr::new(&format!("{k}={v}"))))
            .collect::<io::Result<Vec<_>>>()?;
        let cwd = cstring(self.cwd.as_os_str())?;
        let argv_ptrs = null_terminated(&argv);
        let envp_ptrs = null_terminated(&envp);
        // A descriptor below 3 would be overwritten by the child's own dup2s before it is
        // read: such a one is moved up first (the waiter's 0, 1 and 2 are /dev/null, so this
        // does not happen in practice).
        let stdout = above_stdio(self.stdout)?;
        let stderr = above_stdio(self.stderr)?;
        let mut child = Child {
            program: program.as_ptr(),
            argv: argv_ptrs.as_ptr(),
            envp: envp_ptrs.as_ptr(),
            cwd: cwd.as_ptr(),
            stdio: [
                dev_null()?,
                stdout.as_ref().map_or(self.stdout, AsRawFd::as_raw_fd),
                stderr.as_ref().map_or(self.stderr, AsRawFd::as_raw_fd),
            ],
            error: 0,
        };
        let mut stack: Vec<MaybeUninit<u8>> = Vec::with_capacity(CHILD_STACK);
        // The stack grows down from its (16-byte aligned) top.
        let top = (stack.as_mut_ptr() as usize + CHILD_STACK) & !15;
        // SAFETY: the child runs `child_main` on its own stack, reads `child` (which, like
        // every string and array it points into, outlives the call: CLONE_VFORK returns only
        // once the child has exec'd or exited) and writes only its `error`. It calls nothing
        // that allocates or takes a lock.
        let pid = unsafe {
            libc::clone(
                child_main,
                top as *mut libc::c_void,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (&raw mut child).cast(),
            )
        };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the child is done with `child` (see above); a volatile read, as the write
        // came from another task.
        let error = unsafe { std::ptr::read_volatile(&raw const child.error) };
        if error != 0 {
            // The child exited without exec'ing: reap it, and say why.
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            return Err(io::Error::from_raw_os_error(error));
        }
        Ok(pid as u32)
    }
}

/// The child: set-up, then `exec`. Only system calls through libc: it shares the waiter's
/// memory, and the waiter is suspended in the middle of whatever it was doing.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `Child`, alive until this process execs or exits; every
    // pointer in it is valid (see `Spawn::start`).
    unsafe {
        let child = &mut *arg.cast::<Child>();
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        for sig in RESET_TO_DEFAULT {
            libc::sigaction(sig, &default, std::ptr::null_mut());
        }
        let fail = |child: &mut Child| -> ! {
            std::ptr::write_volatile(&raw mut child.error, *libc::__errno_location());
            libc::_exit(127)
        };
        if libc::setpgid(0, 0) != 0 {
            fail(child);
        }
        for (target, fd) in child.stdio.into_iter().enumerate() {
            // The sources close on exec; their copies here do not.
            if libc::dup2(fd, target as RawFd) < 0 {
                fail(child);
            }
        }
        if libc::chdir(child.cwd) != 0 {
            fail(child);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(child.program, child.argv, child.envp);
        fail(child)
    }
}

/// `/dev/null`, opened once per process (closed on exec: the child gets its own copy as 0).
fn dev_null() -> io::Result<RawFd> {
    static NULL: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = NULL.get() {
        return Ok(fd.as_raw_fd());
    }
    // SAFETY: open of a NUL-terminated path; the fd is ours.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let fd = above_stdio(fd.as_raw_fd())?.unwrap_or(fd);
    Ok(NULL.get_or_init(|| fd).as_raw_fd())
}

/// A copy of `fd` numbered 3 or above (closed on exec) when `fd` is 0, 1 or 2.
fn above_stdio(fd: RawFd) -> io::Result<Option<OwnedFd>> {
    if fd > 2 {
        return Ok(None);
    }
    // SAFETY: fcntl duplicating an open fd; the copy is new and ours.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(copy) }))
}

/// The NULL-terminated array of pointers to `strings`.
fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    ptrs
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{s:?} holds a NUL byte"),
        )
    })
}
