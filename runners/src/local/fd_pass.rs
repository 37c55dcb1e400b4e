//! Handing an open file descriptor to another process over a Unix socket (`SCM_RIGHTS`): the
//! supervisor gives each launch's connection to an idle waiter this way.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Sends `fd` (with one byte of payload) over the socket `sock`.
pub(crate) fn send(sock: RawFd, fd: RawFd) -> io::Result<()> {
    let mut byte = [b'c'];
    let mut iov = one_byte(&mut byte);
    let mut control = vec![0u8; control_space()];
    let msg = header(&mut iov, &mut control);
    // SAFETY: the control buffer is CMSG_SPACE(one fd) bytes, so the first header fits and
    // its data holds one fd.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
    }
    loop {
        // SAFETY: msg points at live buffers for the duration of the call.
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if n == 1 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if n >= 0 || e.kind() != io::ErrorKind::Interrupted {
            return Err(if n >= 0 {
                io::ErrorKind::WriteZero.into()
            } else {
                e
            });
        }
    }
}

fn one_byte(byte: &mut [u8; 1]) -> libc::iovec {
    libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    }
}

/// Room for one descriptor's control message.
fn control_space() -> usize {
    // SAFETY: CMSG_SPACE is a pure size computation.
    unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize }
}

/// A message header over `iov` and `control`, which must outlive its use.
fn header(iov: &mut libc::iovec, control: &mut [u8]) -> libc::msghdr {
    // SAFETY: msghdr is plain data; zeroed is a valid empty header, filled in below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    msg
}

/// Receives a descriptor sent by [`send`]; `None` when the peer closed the socket.
pub(crate) fn receive(sock: RawFd) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8];
    let mut iov = one_byte(&mut byte);
    let mut control = vec![0u8; control_space()];
    let mut msg = header(&mut iov, &mut control);
    let n = loop {
        // SAFETY: msg points at live buffers; CLOEXEC keeps the fd out of scripts we start.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    if n == 0 {
        return Ok(None);
    }
    // SAFETY: the kernel filled the control buffer; we read at most the one header we sized
    // it for and take ownership of the fd it carries.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a message without a descriptor",
            ));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        Ok(Some(OwnedFd::from_raw_fd(fd)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_descriptor_crosses_and_eof_is_none() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut near, far) = UnixStream::pair().unwrap();
        send(a.as_raw_fd(), far.as_raw_fd()).unwrap();
        drop(far);
        let got = receive(b.as_raw_fd()).unwrap().unwrap();
        let mut far = UnixStream::from(got);
        near.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        far.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
        drop(a);
        assert!(receive(b.as_raw_fd()).unwrap().is_none());
    }
}
