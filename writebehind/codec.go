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

// payloadCancel starts a cancel record: the byte, then the uvarint sequence
// number of an earlier entry that must not be drained (its review lost a
// compare-and-set and was never acknowledged).
const payloadCancel = 0xCA

func encodeCancel(seq uint64) []byte {
	return binary.AppendUvarint([]byte{payloadCancel}, seq)
}

// decodeCancel returns the cancelled sequence number of a cancel record.
func decodeCancel(p []byte) (uint64, bool) {
	if len(p) < 2 || p[0] != payloadCancel {
		return 0, false
	}
	seq, n := binary.Uvarint(p[1:])
	return seq, n > 0 && n == len(p)-1
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
	if p[0] != payloadVersion {
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
