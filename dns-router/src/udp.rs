//! The UDP worker loop: one blocking thread per SO_REUSEPORT socket, receiving up to
//! [`BATCH`] datagrams per `recvmmsg` call and sending the answers back with one `sendmmsg`,
//! so that under load a system call moves many packets. Buffers are allocated once per thread.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Instant;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Largest query we read; longer datagrams are cut and then fail to parse (FORMERR).
const IN_SIZE: usize = 4096;
/// Largest UDP answer we write (our EDNS payload size is smaller).
const OUT_SIZE: usize = 4096;

/// Converts a kernel socket address to a std one.
fn to_std(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // enough and suitably aligned for.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Serves `sock` until `stop` returns true (checked at least every read timeout of the socket).
/// `answer(packet, src, out, arrived)` writes a response into `out` and returns its length
/// (0: no answer).
pub fn serve(
    sock: &UdpSocket,
    stop: impl Fn() -> bool,
    mut answer: impl FnMut(&[u8], SocketAddr, &mut [u8], Instant) -> usize,
) {
    let fd = sock.as_raw_fd();
    let mut inbufs = vec![[0u8; IN_SIZE]; BATCH];
    let mut outbufs = vec![[0u8; OUT_SIZE]; BATCH];
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut in_iov: Vec<libc::iovec> = vec![
        libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0
        };
        BATCH
    ];
    let mut out_iov = in_iov.clone();
    let mut in_msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut out_msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut out_len = [0usize; BATCH];
    while !stop() {
        for i in 0..BATCH {
            in_iov[i] = libc::iovec {
                iov_base: inbufs[i].as_mut_ptr().cast(),
                iov_len: IN_SIZE,
            };
            let h = &mut in_msgs[i].msg_hdr;
            h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut in_iov[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            in_msgs[i].msg_len = 0;
        }
        // SAFETY: every header points at live buffers owned by this frame, sized as declared.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                in_msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            // Timeout (EAGAIN) lets the loop check `stop`; other errors are transient on UDP.
            continue;
        }
        let arrived = Instant::now();
        let mut count = 0usize;
        for i in 0..n as usize {
            let Some(src) = to_std(&addrs[i]) else {
                continue;
            };
            if src.port() == 0 {
                continue;
            }
            let len = (in_msgs[i].msg_len as usize).min(IN_SIZE);
            let written = answer(&inbufs[i][..len], src, &mut outbufs[count], arrived);
            if written == 0 {
                continue;
            }
            out_len[count] = written;
            addrs.swap(count, i);
            count += 1;
        }
        for i in 0..count {
            out_iov[i] = libc::iovec {
                iov_base: outbufs[i].as_mut_ptr().cast(),
                iov_len: out_len[i],
            };
            let h = &mut out_msgs[i].msg_hdr;
            h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = match addrs[i].ss_family as libc::c_int {
                libc::AF_INET => std::mem::size_of::<libc::sockaddr_in>(),
                _ => std::mem::size_of::<libc::sockaddr_in6>(),
            } as libc::socklen_t;
            h.msg_iov = &mut out_iov[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        let mut sent = 0usize;
        while sent < count {
            // SAFETY: headers [sent, count) point at live buffers of this frame.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    out_msgs[sent..].as_mut_ptr(),
                    (count - sent) as libc::c_uint,
                    0,
                )
            };
            if r <= 0 {
                // A failed datagram (for example an unreachable client) is skipped.
                sent += 1;
            } else {
                sent += r as usize;
            }
        }
    }
}
