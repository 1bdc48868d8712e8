//go:build linux

package direct

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// vectorWriter writes a backlog's buffers to a socket with one system call.
// It belongs to a shard's writer goroutine, which reuses its iovec array for
// every socket.
//
// The call is a raw syscall: the socket is non-blocking, so the call returns
// within microseconds. Going through the scheduler's syscall path instead
// would mark the writer's P as in a syscall thousands of times per message,
// and Go's sysmon retakes such a P and hands it to another thread, which
// on a busy core costs a context switch for nothing.
type vectorWriter struct {
	iovecs []unix.Iovec
}

// maxIovecs bounds one sendmsg(2).
const maxIovecs = 64

// write writes first and as many of rest as fit in one call; it reports
// how many bytes the socket took. Empty buffers are left out.
func (v *vectorWriter) write(fd int, first []byte, rest [][]byte) (int, error) {
	v.iovecs = v.iovecs[:0]
	v.add(first)
	for _, b := range rest {
		if len(v.iovecs) == maxIovecs {
			break
		}
		v.add(b)
	}
	if len(v.iovecs) == 0 {
		return 0, nil
	}
	// The array would otherwise keep the last buffers written reachable.
	defer clear(v.iovecs)
	for {
		n, errno := v.send(fd)
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, errno
	}
}

// send makes the one system call. A single buffer, which is what almost
// every delivery is, goes by send(2): unlike writev(2) it skips the file
// layer (position lock, permission and fsnotify hooks), which is several
// per cent of a fan-out's kernel time. MSG_NOSIGNAL spares a signal per
// write to a peer that has gone.
func (v *vectorWriter) send(fd int) (uintptr, unix.Errno) {
	const flags = unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL
	if len(v.iovecs) == 1 {
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(v.iovecs[0].Base)), uintptr(v.iovecs[0].Len), flags, 0, 0)
		return n, errno
	}
	msg := unix.Msghdr{Iov: &v.iovecs[0]}
	msg.SetIovlen(len(v.iovecs))
	n, _, errno := unix.RawSyscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), flags)
	return n, errno
}

func (v *vectorWriter) add(b []byte) {
	if len(b) == 0 {
		return
	}
	iov := unix.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	v.iovecs = append(v.iovecs, iov)
}
