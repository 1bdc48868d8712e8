//go:build linux

package direct

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// vectorWriter writes a backlog's buffers with one writev(2) per call. It
// belongs to a shard's writer goroutine, which reuses its iovec array for
// every socket.
//
// The call is a raw syscall: the socket is non-blocking, so writev returns
// within microseconds. Going through the scheduler's syscall path instead
// would mark the writer's P as in a syscall thousands of times per message,
// and Go's sysmon retakes such a P and hands it to another thread, which
// on a busy core costs a context switch for nothing.
type vectorWriter struct {
	iovecs []unix.Iovec
}

// maxIovecs bounds one writev.
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
		n, _, errno := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&v.iovecs[0])), uintptr(len(v.iovecs)))
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, errno
	}
}

func (v *vectorWriter) add(b []byte) {
	if len(b) == 0 {
		return
	}
	iov := unix.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	v.iovecs = append(v.iovecs, iov)
}
