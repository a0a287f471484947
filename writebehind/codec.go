package writebehind

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/srsproxy/srsproxy/internal/wire"
	"github.com/srsproxy/srsproxy/srs"
)

// Payload encoding of an entry: the version byte, the append time (unix ms,
// zig-zag varint), then the review in package wire's encoding. A change to
// that encoding bumps the version.
//
//	version  written by  layout
//	1        release 1   plain entry, wire v1
//	2        release 1   held entry (Hold), wire v1
//	3        release 2   plain entry, wire v2 (schedules carry LastID, Recall)
//	4        release 2   held entry, wire v2
//
// A held entry's review was undecided when it was written, so recovery
// treats it as unsettled unless a confirm or cancel record follows it.
const (
	payloadV1       = 1
	payloadHeldV1   = 2
	payloadPlain    = 3
	payloadHeld     = 4
	payloadVersions = "1, 2, 3, 4"
)

// payloadCancel starts a cancel record: the byte, then the uvarint sequence
// number of an earlier entry that must not be drained (its review lost a
// compare-and-set and was never acknowledged).
const payloadCancel = 0xCA

// payloadConfirm starts a confirm record: the byte, then the uvarint sequence
// number of an earlier held entry that was released (its review reached the
// cache). A recovered entry with neither record is unsettled: the process
// stopped between Hold and Release or Cancel.
const payloadConfirm = 0xC0

// payloadLost starts a record written by Repair in place of damaged frames:
// the byte, then the uvarint count of sequence numbers it stands for (its
// own and the following ones), whose entries could not be read.
const payloadLost = 0xDE

// payloadPad starts a padding record: any bytes, ignored. The disk probe
// writes one and takes it back; a crash in between leaves it in the log.
const payloadPad = 0xD0

func encodeSettle(kind byte, seq uint64) []byte {
	return binary.AppendUvarint([]byte{kind}, seq)
}

// decodeSettle returns the record kind (payloadCancel, payloadConfirm or
// payloadLost) and its number; ok is false for any other payload.
func decodeSettle(p []byte) (kind byte, n uint64, ok bool) {
	if len(p) < 2 || (p[0] != payloadCancel && p[0] != payloadConfirm && p[0] != payloadLost) {
		return 0, 0, false
	}
	n, k := binary.Uvarint(p[1:])
	return p[0], n, k > 0 && k == len(p)-1
}

var errTruncatedPayload = errors.New("truncated payload")

// encodeEntry appends the payload of a new entry (version 3, or 4 if held).
func encodeEntry(dst []byte, appendedAt int64, r srs.Review, held bool) []byte {
	v := byte(payloadPlain)
	if held {
		v = payloadHeld
	}
	dst = append(dst, v)
	dst = binary.AppendVarint(dst, appendedAt)
	return wire.AppendReview(dst, r)
}

// entryPayload is a decoded entry header: the review is left encoded.
type entryPayload struct {
	at     int64  // append time, unix ms
	review []byte // package wire's encoding, v1 if legacy
	held   bool
	legacy bool // release 1 (wire v1)
}

// splitEntry checks the version and splits an entry payload; it does not
// decode the review.
func splitEntry(p []byte) (entryPayload, error) {
	if len(p) == 0 {
		return entryPayload{}, errTruncatedPayload
	}
	var e entryPayload
	switch p[0] {
	case payloadV1:
		e.legacy = true
	case payloadHeldV1:
		e.legacy, e.held = true, true
	case payloadPlain:
	case payloadHeld:
		e.held = true
	default:
		return entryPayload{}, fmt.Errorf("unknown payload version %d (this release reads %s)", p[0], payloadVersions)
	}
	at, n := binary.Varint(p[1:])
	if n <= 0 {
		return entryPayload{}, errTruncatedPayload
	}
	e.at, e.review = at, p[1+n:]
	return e, nil
}

// decodeWire decodes a review in the wire version its entry names.
func decodeWire(b []byte, legacy bool) (srs.Review, error) {
	var (
		r   srs.Review
		err error
	)
	if legacy {
		r, err = wire.DecodeReviewV1(b)
	} else {
		r, err = wire.DecodeReview(b)
	}
	if errors.Is(err, wire.ErrTruncated) {
		err = errTruncatedPayload
	}
	return r, err
}

// decodeEntry decodes a whole entry payload of any version.
func decodeEntry(p []byte) (appendedAt int64, r srs.Review, held bool, err error) {
	e, err := splitEntry(p)
	if err != nil {
		return 0, r, false, err
	}
	r, err = decodeWire(e.review, e.legacy)
	return e.at, r, e.held, err
}

// wireKeys returns the end offsets of the first four strings of a wire
// encoding (id, season, player, question: the same in v1 and v2), so the
// index can key an entry by spans of its bytes without decoding it.
func wireKeys(b []byte) (ends [4]int, ok bool) {
	p := 0
	for i := range ends {
		n, k := binary.Uvarint(b[p:])
		if k <= 0 || n > uint64(len(b)-p-k) {
			return ends, false
		}
		p += k + int(n)
		ends[i] = p
	}
	return ends, true
}

// appendKey appends strings as the wire encoding does (uvarint length, bytes).
func appendKey(dst []byte, ss ...string) []byte {
	for _, s := range ss {
		dst = append(binary.AppendUvarint(dst, uint64(len(s))), s...)
	}
	return dst
}
