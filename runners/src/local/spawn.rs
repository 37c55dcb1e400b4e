//! Starting a script with `posix_spawn`: glibc does it with a vfork, so nothing of the waiter
//! is copied (a fork + exec costs page-table copies and copy-on-write faults in both
//! processes). The script gets its own process group, an empty signal mask and default
//! signal dispositions (the waiter blocks the signals it waits for, and the standard library's
//! own spawn would pass that mask on), its folder, exactly its environment, `/dev/null` for
//! input and the given descriptors for output.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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

impl Spawn<'_> {
    /// Starts the program; its pid. Errors from `exec` (not found, not executable) come back
    /// as the error.
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
        let null = c"/dev/null";
        let mut argv_ptrs: Vec<*mut libc::c_char> =
            argv.iter().map(|a| a.as_ptr().cast_mut()).collect();
        argv_ptrs.push(std::ptr::null_mut());
        let mut envp_ptrs: Vec<*mut libc::c_char> =
            envp.iter().map(|e| e.as_ptr().cast_mut()).collect();
        envp_ptrs.push(std::ptr::null_mut());
        // SAFETY: the attribute and file-action objects are initialised before use and
        // destroyed once; every pointer handed to posix_spawn points at a NUL-terminated
        // string or a NULL-terminated array that lives until it returns.
        unsafe {
            let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
            let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
            check(libc::posix_spawnattr_init(&mut attr))?;
            let result = (|| {
                check(libc::posix_spawn_file_actions_init(&mut actions))?;
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                // The waiter installs no handlers; what it may have ignored (SIGPIPE, which
                // the Rust runtime ignores, and what the launcher's parent ignored for the
                // signals it blocks) goes back to the default. Not every signal: glibc makes
                // one sigaction call in the child for each signal in this set.
                let mut reset: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut reset);
                for sig in RESET_TO_DEFAULT {
                    libc::sigaddset(&mut reset, sig);
                }
                check(libc::posix_spawnattr_setsigmask(&mut attr, &empty))?;
                check(libc::posix_spawnattr_setsigdefault(&mut attr, &reset))?;
                check(libc::posix_spawnattr_setpgroup(&mut attr, 0))?;
                check(libc::posix_spawnattr_setflags(
                    &mut attr,
                    (libc::POSIX_SPAWN_SETSIGMASK
                        | libc::POSIX_SPAWN_SETSIGDEF
                        | libc::POSIX_SPAWN_SETPGROUP) as libc::c_short,
                ))?;
                check(libc::posix_spawn_file_actions_addopen(
                    &mut actions,
                    0,
                    null.as_ptr(),
                    libc::O_RDONLY,
                    0,
                ))?;
                check(libc::posix_spawn_file_actions_adddup2(
                    &mut actions,
                    self.stdout,
                    1,
                ))?;
                check(libc::posix_spawn_file_actions_adddup2(
                    &mut actions,
                    self.stderr,
                    2,
                ))?;
                check(libc::posix_spawn_file_actions_addchdir_np(
                    &mut actions,
                    cwd.as_ptr(),
                ))?;
                let mut pid: libc::pid_t = 0;
                check(libc::posix_spawn(
                    &mut pid,
                    program.as_ptr(),
                    &actions,
                    &attr,
                    argv_ptrs.as_ptr(),
                    envp_ptrs.as_ptr(),
                ))?;
                Ok(pid as u32)
            })();
            libc::posix_spawn_file_actions_destroy(&mut actions);
            libc::posix_spawnattr_destroy(&mut attr);
            result
        }
    }
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{s:?} holds a NUL byte"),
        )
    })
}

/// posix_spawn's functions return the error number instead of setting errno.
fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}
