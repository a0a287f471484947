// Package wire is the one binary encoding of a review, used by the durable
// queue's entries: strings as a uvarint length and the bytes, integers as
// zig-zag varints, floats as 8 bytes of IEEE 754 little-endian, fields in a
// fixed order (not reflection, so a renamed field can never decode old bytes
// as zeros).
//
// Version 2 (release 2) adds each schedule's LastID (8 bytes) and Recall
// (8 bytes). The encoding carries no version byte of its own: the container
// (a queue payload) has one and picks DecodeReview or DecodeReviewV1.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/srsproxy/srsproxy/srs"
)

// ErrTruncated is returned for bytes that end before the review does.
var ErrTruncated = errors.New("truncated review")

// AppendReview appends the version-2 encoding of r to dst.
func AppendReview(dst []byte, r srs.Review) []byte {
	for _, s := range [...]string{r.ID, r.Season, r.Player, r.QuestionID, r.Subject, r.Topic, r.Stage} {
		dst = appendString(dst, s)
	}
	for _, v := range [...]int64{int64(r.Grade), r.ReviewedAt, r.DurationMS, int64(r.ElapsedDays)} {
		dst = binary.AppendVarint(dst, v)
	}
	dst = appendSchedule(dst, r.Before)
	dst = appendSchedule(dst, r.After)
	return appendString(dst, r.Sidecar)
}

// DecodeReview decodes a version-2 review that must fill b exactly.
func DecodeReview(b []byte) (srs.Review, error) { return decode(b, 2) }

// DecodeReviewV1 decodes a version-1 review (release 1's queue entries):
// its schedules have no LastID and Recall, which decode as 0.
func DecodeReviewV1(b []byte) (srs.Review, error) { return decode(b, 1) }

func decode(b []byte, version int) (srs.Review, error) {
	d := decoder{b: b, version: version}
	var r srs.Review
	for _, s := range [...]*string{&r.ID, &r.Season, &r.Player, &r.QuestionID, &r.Subject, &r.Topic, &r.Stage} {
		*s = d.string()
	}
	r.Grade = srs.Grade(d.varint())
	r.ReviewedAt = d.varint()
	r.DurationMS = d.varint()
	r.ElapsedDays = int(d.varint())
	r.Before = d.schedule()
	r.After = d.schedule()
	r.Sidecar = d.string()
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	return r, d.err
}

func appendString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

func appendSchedule(dst []byte, s srs.Schedule) []byte {
	dst = binary.AppendVarint(dst, int64(s.State))
	dst = binary.AppendVarint(dst, int64(s.Step))
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.Stability))
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.Difficulty))
	for _, v := range [...]int64{s.Due, s.LastReview, int64(s.Reps), int64(s.Lapses)} {
		dst = binary.AppendVarint(dst, v)
	}
	dst = binary.LittleEndian.AppendUint64(dst, s.LastID)
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.Recall))
}

// decoder reads fields and keeps the first error.
type decoder struct {
	b       []byte
	err     error
	version int
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)-k) {
		d.fail()
		return ""
	}
	s := string(d.b[k : k+int(n)])
	d.b = d.b[k+int(n):]
	return s
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) float() float64 { return math.Float64frombits(d.uint64()) }

func (d *decoder) schedule() srs.Schedule {
	var s srs.Schedule
	s.State = srs.State(d.varint())
	s.Step = int(d.varint())
	s.Stability = d.float()
	s.Difficulty = d.float()
	s.Due = d.varint()
	s.LastReview = d.varint()
	s.Reps = int(d.varint())
	s.Lapses = int(d.varint())
	if d.version >= 2 {
		s.LastID = d.uint64()
		s.Recall = d.float()
	}
	return s
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = ErrTruncated
	}
	d.b = nil
}
