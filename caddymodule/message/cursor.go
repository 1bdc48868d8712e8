package message

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Cursor is a position in a hub's history: the id of the last message a
// subscriber handled. Seq is one counter for the whole hub, so a single
// cursor covers every channel of a multiplexed subscription (SPEC §3); Epoch
// names the history the counter belongs to and changes when history is lost.
type Cursor struct {
	Epoch string
	Seq   uint64
}

// Earliest is the cursor that asks for everything retained. It never causes
// a reset notice.
var Earliest = Cursor{Epoch: earliestText}

const (
	earliestText = "earliest"
	maxEpochLen  = 16
)

// ErrMalformedCursor is returned for a cursor that is neither `earliest` nor
// `{epoch}-{seq}`.
var ErrMalformedCursor = errors.New("malformed cursor: want {epoch}-{seq} or earliest")

// IsZero reports whether c is "no cursor": the subscriber wants only what is
// published from now on.
func (c Cursor) IsZero() bool { return c.Epoch == "" }

// IsEarliest reports whether c asks for everything retained.
func (c Cursor) IsEarliest() bool { return c.Epoch == earliestText }

// String formats c as an id, `{epoch}-{seq}`.
func (c Cursor) String() string {
	if c.IsZero() || c.IsEarliest() {
		return c.Epoch
	}
	return c.Epoch + "-" + strconv.FormatUint(c.Seq, 10)
}

// AppendText appends the id form of c to b without allocating.
func (c Cursor) AppendText(b []byte) []byte {
	b = append(b, c.Epoch...)
	if c.IsZero() || c.IsEarliest() {
		return b
	}
	b = append(b, '-')
	return strconv.AppendUint(b, c.Seq, 10)
}

// ParseCursor parses an id or `earliest`. The empty string is the zero
// cursor. Epochs are 1–16 lower-case letters or digits; seq is decimal.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	if s == earliestText {
		return Earliest, nil
	}
	epoch, seqText, ok := strings.Cut(s, "-")
	if !ok || !validEpoch(epoch) || seqText == "" || len(seqText) > 20 {
		return Cursor{}, ErrMalformedCursor
	}
	for i := 0; i < len(seqText); i++ {
		if seqText[i] < '0' || seqText[i] > '9' {
			return Cursor{}, ErrMalformedCursor
		}
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		return Cursor{}, ErrMalformedCursor
	}
	return Cursor{Epoch: epoch, Seq: seq}, nil
}

func validEpoch(epoch string) bool {
	if epoch == "" || len(epoch) > maxEpochLen || epoch == earliestText {
		return false
	}
	for i := 0; i < len(epoch); i++ {
		c := epoch[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// NewEpoch returns a random epoch name. Eight base-36 characters give 41
// bits, so two histories of one deployment practically never share a name.
func NewEpoch() (string, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Exp(big.NewInt(36), big.NewInt(8), nil))
	if err != nil {
		return "", fmt.Errorf("new epoch: %w", err)
	}
	return fmt.Sprintf("%08s", n.Text(36)), nil
}
