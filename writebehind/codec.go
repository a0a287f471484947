package writebehind

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/srsproxy/srsproxy/internal/wire"
	"github.com/srsproxy/srsproxy/srs"
)

// Payload encoding, version 1: the version byte, the append time (unix ms,
// zig-zag varint), then the review in package wire's encoding. A change to
// that encoding bumps the version.
const payloadVersion = 1

// payloadHeldVersion marks an entry written by Hold: the same layout, but the
// review's outcome was undecided when it was written, so recovery treats it
// as unsettled unless a confirm record follows it.
const payloadHeldVersion = 2

// payloadCancel starts a cancel record: the byte, then the uvarint sequence
// number of an earlier entry that must not be drained (its review lost a
// compare-and-set and was never acknowledged).
const payloadCancel = 0xCA

// payloadConfirm starts a confirm record: the byte, then the uvarint sequence
// number of an earlier held entry that was released (its review reached the
// cache). A recovered entry with neither record is unsettled: the process
// stopped between Hold and Release or Cancel.
const payloadConfirm = 0xC0

func encodeSettle(kind byte, seq uint64) []byte {
	return binary.AppendUvarint([]byte{kind}, seq)
}

// decodeSettle returns the record kind (payloadCancel or payloadConfirm) and
// the sequence number of a settle record; ok is false for any other payload.
func decodeSettle(p []byte) (kind byte, seq uint64, ok bool) {
	if len(p) < 2 || (p[0] != payloadCancel && p[0] != payloadConfirm) {
		return 0, 0, false
	}
	seq, n := binary.Uvarint(p[1:])
	return p[0], seq, n > 0 && n == len(p)-1
}

var errTruncatedPayload = errors.New("truncated payload")

func encodeEntry(dst []byte, appendedAt int64, r srs.Review) []byte {
	dst = append(dst, payloadVersion)
	dst = binary.AppendVarint(dst, appendedAt)
	return wire.AppendReview(dst, r)
}

func decodeEntry(p []byte) (appendedAt int64, r srs.Review, err error) {
	if len(p) == 0 {
		return 0, r, errTruncatedPayload
	}
	if p[0] != payloadVersion && p[0] != payloadHeldVersion {
		return 0, r, fmt.Errorf("unknown payload version %d", p[0])
	}
	at, n := binary.Varint(p[1:])
	if n <= 0 {
		return 0, r, errTruncatedPayload
	}
	r, err = wire.DecodeReview(p[1+n:])
	if errors.Is(err, wire.ErrTruncated) {
		err = errTruncatedPayload
	}
	return at, r, err
}
