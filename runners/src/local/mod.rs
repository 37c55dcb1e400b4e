//! The local runner: runs jobs as processes on this machine, each under a detached shim.
